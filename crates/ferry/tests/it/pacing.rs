//! Client-side pacing against the emulator's per-account rate limit: paced below the limit,
//! a burst of passes meets no 429 at all; unpaced, the same burst does (so the check can
//! fail), and both end with every file in Dropbox.

use crate::support::{Emu, Stack};
use ferry_dropbox::Entry;
use serde_json::json;

/// Forty one-file records started at once by one rule change, each pass listing its
/// folder (no mirror), against an account that allows 20 requests a second (burst 20).
/// Returns the 429 answers Ferry met.
async fn burst_of_passes(requests_per_second: u32) -> u64 {
    let emu = Emu::start_with(|c| {
        c.model.rate_limit = true;
        c.model.rate_per_sec = 20.0;
        c.model.rate_burst = 20;
    })
    .await;
    let stack = Stack::start_on(emu, |c| {
        c.workers = 8;
        c.remote_mirror = false;
        c.dropbox_requests_per_second = requests_per_second;
    })
    .await;
    let rule = |condition: &str| {
        json!({"record_kind": "invoice", "connection": "dropbox",
               "folder": "Invoices/{{ record.key }}", "condition": condition})
    };
    stack
        .api
        .put_json("/v1/rules/invoices", &rule("record.fields.ready"))
        .await
        .unwrap();
    const RECORDS: usize = 40;
    for n in 0..RECORDS {
        stack
            .record_with("invoice", &format!("I{n}"), &["invoice.pdf"])
            .await;
    }
    stack.settle().await;
    let engine = stack.app.engine();
    let before = engine.metrics().rate_limited_total();
    stack
        .api
        .put_json("/v1/rules/invoices", &rule("true"))
        .await
        .unwrap();
    stack.settle().await;
    for n in 0..RECORDS {
        let path = format!("/Ferry/Invoices/I{n}/invoice.pdf");
        assert!(
            matches!(stack.emu.client().metadata(&path).await, Ok(Entry::File(_))),
            "{path} is not in Dropbox"
        );
    }
    engine.metrics().rate_limited_total() - before
}

#[tokio::test]
async fn paced_below_the_accounts_limit_a_burst_meets_no_429() {
    let paced = burst_of_passes(10).await;
    assert_eq!(paced, 0, "paced at 10 requests/s, Ferry met {paced} 429s");
    let unpaced = burst_of_passes(0).await;
    assert!(
        unpaced > 0,
        "unpaced, the burst met no 429: the check above proves nothing"
    );
}
