//! Rules that would place one record in one folder twice. Two bindings in the same folder
//! would both claim the files there (guarantee 3: no Dropbox file is tracked twice), so a
//! rule is checked against the other rules of its kind and connection when it is saved: the
//! folders both render for the records that exist (a sample of them), or the templates
//! themselves when there are none. The runtime keeps a second line of defence: a file
//! another binding already syncs in the same folder is refused (`binding.rs`).

use crate::{Engine, EngineError};
use ferry_core::names::dropbox_lower;
use ferry_core::rules::{CompiledRule, RuleContext, RuleSpec};
use serde::Serialize;

/// Records looked at per check (enough to catch templates that collide, bounded in cost).
const SAMPLE: usize = 200;

/// One rule another rule overlaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleOverlap {
    /// The other rule.
    pub rule: String,
    /// A record both place in the same folder (`None`: the folder templates are the same).
    pub record: Option<String>,
    /// The folder both render (or the template).
    pub folder: String,
    /// Whether either rule pulls from Dropbox (then both would import the same new files).
    pub pulls: bool,
}

fn normalized(template: &str) -> String {
    template.chars().filter(|c| !c.is_whitespace()).collect()
}

impl Engine {
    /// Checks a rule before it is saved: it compiles, its connection exists (a typo would
    /// otherwise place nothing, silently), and it returns the rules it overlaps with.
    pub async fn check_rule(&self, spec: &RuleSpec) -> Result<Vec<RuleOverlap>, EngineError> {
        CompiledRule::compile(spec.clone())
            .map_err(|e| EngineError::Invalid(format!("invalid rule: {e}")))?;
        if self.store.connection(&spec.connection).await?.is_none() {
            let known: Vec<String> = self
                .store
                .connections()
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect();
            return Err(EngineError::Invalid(format!(
                "rule {:?} names the connection {:?}, which does not exist (connections: {known:?}); connect it first",
                spec.name, spec.connection
            )));
        }
        self.rule_overlaps(spec).await
    }

    /// The rules `spec` overlaps with: same kind, same connection, and the same folder for
    /// at least one record. `spec` must compile.
    pub async fn rule_overlaps(&self, spec: &RuleSpec) -> Result<Vec<RuleOverlap>, EngineError> {
        let rule = CompiledRule::compile(spec.clone())
            .map_err(|e| EngineError::Invalid(format!("invalid rule: {e}")))?;
        let others: Vec<CompiledRule> = self
            .store
            .rules()
            .await?
            .into_iter()
            .filter(|r| {
                r.name != spec.name
                    && r.record_kind == spec.record_kind
                    && r.connection == spec.connection
            })
            .filter_map(|r| CompiledRule::compile(r).ok())
            .collect();
        let mut found: Vec<RuleOverlap> = Vec::new();
        let ids = self.store.record_ids_of_kind(&spec.record_kind).await?;
        for id in ids.into_iter().take(SAMPLE) {
            let Some(record) = self.store.record_by_id(id).await? else {
                continue;
            };
            let (parent, children, siblings) = self.relatives(&record).await?;
            let ctx = RuleContext::new(&record, parent.as_ref(), &children, &siblings);
            // A rule too costly to evaluate is refused now, not found failing file by file.
            let attachments = self.store.attachments(id).await?;
            let limit = [rule.applies(&ctx).err(), rule.folder(&ctx).err()]
                .into_iter()
                .flatten()
                .chain(attachments.iter().take(20).flat_map(|a| {
                    [rule.selects(&ctx, a).err(), rule.file_path(&ctx, a).err()]
                        .into_iter()
                        .flatten()
                }))
                .find(|e| e.is_limit());
            if let Some(e) = limit {
                return Err(EngineError::Invalid(format!(
                    "rule {:?} exceeds the limits of a rule for {}/{}: {e}",
                    spec.name, record.kind, record.key
                )));
            }
            // A rule that does not apply, or cannot render, places nothing to collide with.
            let folder_of = |r: &CompiledRule| match (r.applies(&ctx), r.folder(&ctx)) {
                (Ok(true), Ok(parts)) => Some(parts.join("/")),
                _ => None,
            };
            let Some(mine) = folder_of(&rule) else {
                continue;
            };
            for other in &others {
                if found.iter().any(|f| f.rule == other.spec().name) {
                    continue;
                }
                if folder_of(other).is_some_and(|f| dropbox_lower(&f) == dropbox_lower(&mine)) {
                    found.push(RuleOverlap {
                        rule: other.spec().name.clone(),
                        record: Some(format!("{}/{}", record.kind, record.key)),
                        folder: mine.clone(),
                        pulls: spec.direction.pulls() || other.spec().direction.pulls(),
                    });
                }
            }
        }
        for other in &others {
            if !found.iter().any(|f| f.rule == other.spec().name)
                && normalized(&other.spec().folder) == normalized(&spec.folder)
            {
                found.push(RuleOverlap {
                    rule: other.spec().name.clone(),
                    record: None,
                    folder: spec.folder.clone(),
                    pulls: spec.direction.pulls() || other.spec().direction.pulls(),
                });
            }
        }
        Ok(found)
    }
}
