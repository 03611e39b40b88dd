"""Drive the Ferry Dropbox emulator over TLS with the official Python `dropbox` SDK (PyPI).

The SDK is unmodified: it is pointed at the emulator through its own environment variables,
which must be set before it is imported:

    DROPBOX_API_HOST, DROPBOX_API_CONTENT_HOST, DROPBOX_API_NOTIFY_HOST = localhost:<port>

plus REQUESTS_CA_BUNDLE = the emulator's CA certificate (data_dir/tls/ca.pem; the SDK posts with
verify=True, so `requests` takes the bundle from this variable), and for this script
FERRY_EMU_TOKEN (a user token), FERRY_EMU_CERT (the same CA file) and FERRY_EMU_ADMIN (the
emulator's /admin/model URL).

Covers uploads and write modes, conflicts, upload sessions, batches, cursors, long-poll,
sharing and errors, and checks content hashes against an independent hashlib implementation.
Prints one line per check and exits non-zero if any failed.
"""

import hashlib
import json
import os
import sys
import threading
import time
import traceback

import re
import urllib.parse

import dropbox
import requests
from dropbox import common, exceptions, files, sharing

TOKEN = os.environ["FERRY_EMU_TOKEN"]
CERT = os.environ["FERRY_EMU_CERT"]
ADMIN = os.environ["FERRY_EMU_ADMIN"]
TEAM_TOKEN = os.environ["FERRY_EMU_TEAM_TOKEN"]
TEAM_MEMBER = os.environ["FERRY_EMU_TEAM_MEMBER"]
TEAM_ROOT = os.environ["FERRY_EMU_TEAM_ROOT"]

dbx = dropbox.Dropbox(TOKEN, ca_certs=CERT, max_retries_on_error=0)

BLOCK = 4 * 1024 * 1024
RESULTS = []


def content_hash(data):
    """Dropbox's content hash, written from the published description (not from our code)."""
    digests = b"".join(
        hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK)
    )
    return hashlib.sha256(digests).hexdigest()


def check(name):
    def run(fn):
        try:
            fn()
            RESULTS.append((name, None))
            print("ok   " + name, flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            RESULTS.append((name, traceback.format_exc()))
            print("FAIL " + name + "\n" + traceback.format_exc(), flush=True)
        return fn
    return run


def set_model(**knobs):
    r = requests.put(ADMIN, data=json.dumps(knobs), verify=CERT, timeout=10,
                     headers={"Authorization": "Bearer " + TOKEN})
    r.raise_for_status()


@check("account and space usage")
def _():
    account = dbx.users_get_current_account()
    assert len(account.account_id) == 40, account.account_id
    usage = dbx.users_get_space_usage()
    assert usage.allocation.is_individual()


@check("content-hash vectors: empty, 1 byte, 4 MiB, 4 MiB + 1, 10 MiB")
def _():
    known = {
        0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        BLOCK: "c7e946d101855255d919ef0c70718633adf77d3dfb3adeeecf5d0cb4e951be58",
        BLOCK + 1: "14a4d47f23a30177885d9820122f17d2d3a55fe63f7f5c27b95f689e0b2accd6",
    }
    for size in [0, 1, BLOCK, BLOCK + 1, 10 * 1024 * 1024]:
        data = (b"\0" if size != 1 else b"a") * size
        expected = content_hash(data)
        if size in known:
            assert expected == known[size], (size, expected)
        meta = dbx.files_upload(data, "/hash/%d.bin" % size)
        assert meta.content_hash == expected, (size, meta.content_hash, expected)
        assert meta.size == size
    _, response = dbx.files_download("/hash/1.bin")
    assert response.content == b"a"


@check("uploads: write modes, identical content, autorename, conflicted copy")
def _():
    v1 = dbx.files_upload(b"v1", "/Modes/Caf\u00e9.txt")
    assert v1.path_display == "/Modes/Caf\u00e9.txt"
    same = dbx.files_upload(b"v1", "/modes/CAF\u00c9.txt")
    assert same.rev == v1.rev, "identical content is no conflict and no new rev"
    try:
        dbx.files_upload(b"other", "/Modes/Caf\u00e9.txt")
        raise AssertionError("add over different content must conflict")
    except exceptions.ApiError as e:
        assert e.error.is_path() and e.error.get_path().reason.is_conflict(), e.error
        assert e.error.get_path().reason.get_conflict().is_file()
    renamed = dbx.files_upload(b"other", "/Modes/Caf\u00e9.txt", autorename=True)
    assert renamed.name == "Caf\u00e9 (1).txt", renamed.name
    v2 = dbx.files_upload(b"v2", "/Modes/Caf\u00e9.txt", mode=files.WriteMode.update(v1.rev))
    assert v2.rev != v1.rev
    copy = dbx.files_upload(
        b"v3", "/Modes/Caf\u00e9.txt", mode=files.WriteMode.update(v1.rev), autorename=True
    )
    assert copy.name == "Caf\u00e9 (conflicted copy).txt", copy.name
    over = dbx.files_upload(b"v4", "/Modes/Caf\u00e9.txt", mode=files.WriteMode.overwrite)
    assert over.id == v1.id
    try:
        dbx.files_upload(b"v4", "/Modes/Caf\u00e9.txt", strict_conflict=True)
        raise AssertionError("strict_conflict forces a conflict on identical content")
    except exceptions.ApiError as e:
        assert e.error.is_path()


@check("upload sessions: start, append_v2, incorrect_offset, finish")
def _():
    start = dbx.files_upload_session_start(b"hello ")
    cursor = files.UploadSessionCursor(session_id=start.session_id, offset=6)
    dbx.files_upload_session_append_v2(b"world", cursor)
    try:
        dbx.files_upload_session_append_v2(b"again", cursor)
        raise AssertionError("stale offset must fail")
    except exceptions.ApiError as e:
        assert e.error.is_incorrect_offset(), e.error
        assert e.error.get_incorrect_offset().correct_offset == 11
    cursor = files.UploadSessionCursor(session_id=start.session_id, offset=11)
    meta = dbx.files_upload_session_finish(b"!", cursor, files.CommitInfo(path="/sessions/s.txt"))
    assert meta.size == 12
    _, response = dbx.files_download("/sessions/s.txt")
    assert response.content == b"hello world!"


@check("finish_batch_v2: closed sessions commit, open ones fail per entry")
def _():
    ids = dbx.files_upload_session_start_batch(3).session_ids
    entries = []
    for i, session_id in enumerate(ids):
        cursor = files.UploadSessionCursor(session_id=session_id, offset=0)
        dbx.files_upload_session_append_v2(b"batch %d" % i, cursor, close=(i < 2))
        entries.append(files.UploadSessionFinishArg(
            cursor=files.UploadSessionCursor(session_id=session_id, offset=7),
            commit=files.CommitInfo(path="/batch/f%d.txt" % i),
        ))
    result = dbx.files_upload_session_finish_batch_v2(entries)
    assert result.entries[0].is_success() and result.entries[1].is_success()
    assert result.entries[0].get_success().name == "f0.txt"
    failure = result.entries[2].get_failure()
    assert failure.is_lookup_failed() and failure.get_lookup_failed().is_not_closed(), failure


@check("concurrent session: 4 MiB blocks out of order, close, finish")
def _():
    session_id = dbx.files_upload_session_start(
        b"", session_type=files.UploadSessionType.concurrent
    ).session_id
    tail = files.UploadSessionCursor(session_id=session_id, offset=BLOCK)
    dbx.files_upload_session_append_v2(b"tail", tail, close=True)
    head = files.UploadSessionCursor(session_id=session_id, offset=0)
    dbx.files_upload_session_append_v2(b"\1" * BLOCK, head)
    done = files.UploadSessionCursor(session_id=session_id, offset=BLOCK + 4)
    meta = dbx.files_upload_session_finish(b"", done, files.CommitInfo(path="/concurrent.bin"))
    assert meta.content_hash == content_hash(b"\1" * BLOCK + b"tail")


@check("folder, delete, move and copy batches with their checks")
def _():
    launch = dbx.files_create_folder_batch(["/B1", "/B2"])
    assert launch.is_complete(), launch
    assert all(e.is_success() for e in launch.get_complete().entries)
    dbx.files_upload(b"x", "/B1/x.txt")
    copied = dbx.files_copy_v2("/B1", "/B1 copy")
    assert isinstance(copied.metadata, files.FolderMetadata)
    launch = dbx.files_move_batch_v2([
        files.RelocationPath("/B1/x.txt", "/B2/x.txt"),
        files.RelocationPath("/missing", "/B2/y.txt"),
    ])
    status = dbx.files_move_batch_check_v2(launch.get_async_job_id())
    assert status.is_complete()
    entries = status.get_complete().entries
    assert entries[0].is_success() and entries[0].get_success().name == "x.txt"
    failed = entries[1].get_failure()
    assert failed.is_relocation_error() and failed.get_relocation_error().is_from_lookup()
    launch = dbx.files_delete_batch([files.DeleteArg("/B2"), files.DeleteArg("/nope")])
    status = dbx.files_delete_batch_check(launch.get_async_job_id())
    entries = status.get_complete().entries
    assert entries[0].is_success() and entries[1].is_failure()
    deleted = dbx.files_get_metadata("/B2/x.txt", include_deleted=True)
    assert isinstance(deleted, files.DeletedMetadata)


@check("cursors: paging, deltas with deletions, get_latest_cursor, reset")
def _():
    dbx.files_upload(b"1", "/cur/one.txt")
    dbx.files_upload(b"2", "/cur/two.txt")
    page = dbx.files_list_folder("/cur", limit=1)
    assert len(page.entries) == 1 and page.has_more
    rest = dbx.files_list_folder_continue(page.cursor)
    assert not rest.has_more
    latest = dbx.files_list_folder_get_latest_cursor("/cur").cursor
    dbx.files_delete_v2("/cur/one.txt")
    delta = dbx.files_list_folder_continue(latest)
    assert [type(e).__name__ for e in delta.entries] == ["DeletedMetadata"], delta.entries
    try:
        dbx.files_list_folder_continue("junk")
        raise AssertionError("junk cursor must reset")
    except exceptions.ApiError as e:
        assert e.error.is_reset()


@check("long-poll: wakes on a change (no Authorization header sent)")
def _():
    cursor = dbx.files_list_folder_get_latest_cursor("/cur").cursor

    def writer():
        time.sleep(0.5)
        dbx.files_upload(b"3", "/cur/three.txt")

    thread = threading.Thread(target=writer)
    started = time.monotonic()
    thread.start()
    result = dbx.files_list_folder_longpoll(cursor, timeout=60)
    thread.join()
    assert result.changes, result
    assert time.monotonic() - started < 50


@check("search_v2, get_temporary_link (served by the emulator)")
def _():
    found = dbx.files_search_v2("three")
    names = [m.metadata.get_metadata().name for m in found.matches]
    assert names == ["three.txt"], names
    link = dbx.files_get_temporary_link("/cur/three.txt")
    body = requests.get(link.link, verify=CERT, timeout=10).content
    assert body == b"3"


@check("sharing: create, already exists (with the link), list, revoke")
def _():
    settings = sharing.SharedLinkSettings(audience=sharing.LinkAudience.public)
    link = dbx.sharing_create_shared_link_with_settings("/cur/two.txt", settings=settings)
    assert isinstance(link, sharing.FileLinkMetadata), link
    try:
        dbx.sharing_create_shared_link_with_settings("/cur/two.txt")
        raise AssertionError("second link must fail")
    except exceptions.ApiError as e:
        assert e.error.is_shared_link_already_exists()
        assert e.error.get_shared_link_already_exists().get_metadata().url == link.url
    listed = dbx.sharing_list_shared_links(path="/cur/two.txt", direct_only=True)
    assert [l.url for l in listed.links] == [link.url]
    dbx.sharing_revoke_shared_link(link.url)
    assert dbx.sharing_list_shared_links(path="/cur/two.txt").links == []


@check("errors: bad input, bad token, missing path, rate limit")
def _():
    try:
        dbx.files_list_folder("/")
        raise AssertionError('"/" as the root is bad input')
    except exceptions.BadInputError:
        pass
    try:
        dbx.files_get_metadata("/no/such/file")
        raise AssertionError("missing path")
    except exceptions.ApiError as e:
        assert e.error.is_path() and e.error.get_path().is_not_found()
    stranger = dropbox.Dropbox("not-a-token", ca_certs=CERT, max_retries_on_error=0)
    try:
        stranger.users_get_current_account()
        raise AssertionError("bad token")
    except exceptions.AuthError as e:
        assert e.error.is_invalid_access_token()
    set_model(rate_per_sec=0.2, rate_burst=1)
    impatient = dropbox.Dropbox(
        TOKEN, ca_certs=CERT, max_retries_on_error=0, max_retries_on_rate_limit=0
    )
    try:
        impatient.users_get_space_usage()
        impatient.users_get_space_usage()
        raise AssertionError("expected a rate limit")
    except exceptions.RateLimitError as e:
        assert e.error.reason.is_too_many_requests(), e.error
        assert e.backoff == 5, e.backoff
    finally:
        set_model(rate_per_sec=200.0, rate_burst=1000)


@check("OAuth: PKCE no-redirect flow, consent page, code exchange, refresh")
def _():
    flow = dropbox.DropboxOAuth2FlowNoRedirect(
        "ferry-app", use_pkce=True, token_access_type="offline", ca_certs=CERT
    )
    url = urllib.parse.urlsplit(flow.start())
    params = dict(urllib.parse.parse_qsl(url.query))
    page = requests.get(
        "https://%s/oauth2/authorize" % os.environ["DROPBOX_API_HOST"],
        params=params, verify=CERT, timeout=10,
    )
    assert page.status_code == 200 and "Allow" in page.text
    params["decision"] = "allow"
    shown = requests.post(
        "https://%s/oauth2/authorize" % os.environ["DROPBOX_API_HOST"],
        data=params, verify=CERT, timeout=10,
    )
    code = re.search(r'<code id="code">([^<]+)</code>', shown.text).group(1)
    result = flow.finish(code)
    assert result.access_token.startswith("sl.") and result.refresh_token
    user = dropbox.Dropbox(
        oauth2_access_token=result.access_token,
        oauth2_refresh_token=result.refresh_token,
        app_key="ferry-app",
        ca_certs=CERT,
    )
    first = user.users_get_current_account().account_id
    user.refresh_access_token()
    assert user._oauth2_access_token != result.access_token
    assert user.users_get_current_account().account_id == first


@check("teams: as_user (Select-User) and with_path_root (team root)")
def _():
    team = dropbox.DropboxTeam(TEAM_TOKEN, ca_certs=CERT, max_retries_on_error=0)
    member = team.as_user(TEAM_MEMBER)
    account = member.users_get_current_account()
    assert account.team_member_id == TEAM_MEMBER
    assert account.root_info.root_namespace_id == TEAM_ROOT
    shared = member.with_path_root(common.PathRoot.root(TEAM_ROOT))
    shared.files_create_folder_v2("/Team Space")
    mine = dbx.with_path_root(common.PathRoot.namespace_id(TEAM_ROOT))
    names = [e.name for e in mine.files_list_folder("").entries]
    assert names == ["Team Space"], names
    try:
        dbx.with_path_root(common.PathRoot.root("1")).files_list_folder("")
        raise AssertionError("a wrong root must fail")
    except exceptions.PathRootError as e:
        assert e.error.is_invalid_root(), e.error
    try:
        team.as_user("dbmid:nobody").users_get_current_account()
        raise AssertionError("unknown member")
    except exceptions.AuthError as e:
        assert e.error.is_invalid_select_user()


failed = [name for name, error in RESULTS if error]
print("%d checks, %d failed%s" % (len(RESULTS), len(failed), (": " + ", ".join(failed)) if failed else ""))
sys.exit(1 if failed else 0)
