"""The reference intake: tokens, the tus service's rules, and bad input refused on both sides."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import time
from pathlib import Path

import pytest
import requests

from collector.upload import TusClient, UploadError, send
from intake.storage import LocalStorage
from intake.tokens import TokenError, issue, load_or_create_secret, parse_duration, verify
from intake.tus import ClientGone, HttpError, TusService
from tests.transfer_kit import FaultProxy, Intake, jcdiag, make_bundle, one_json, raw_upload


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    with Intake(tmp_path_factory.mktemp("intake") / "data") as service:
        yield service


@pytest.fixture(scope="module")
def engineer(intake):
    return intake.token("--engineer")


@pytest.fixture(scope="module")
def case_a_bundle(tmp_path_factory, intake):
    return make_bundle(tmp_path_factory.mktemp("a"), intake.data / "support.pub.pem", case="A-1")


@pytest.fixture
def spool_env(tmp_path):
    return {"JCDIAG_SPOOL": str(tmp_path / "spool")}


def visible(intake: Intake, engineer: str) -> set[str]:
    """Bundle IDs an engineer can see, checked through the API and in the storage itself."""
    listed = {b["bundle_id"] for b in intake.get("/api/v1/bundles", engineer).json()["bundles"]}
    on_disk = {p.parent.parent.name for p in (intake.data / "store" / "bundles").glob("*/*/record.json")}
    assert listed == on_disk
    return listed


def no_trace(intake: Intake, bundle_id: str) -> bool:
    """Nothing of ``bundle_id`` under bundles/: no record, no assembled file."""
    folder = intake.data / "store" / "bundles" / bundle_id
    return not folder.exists() or not any(folder.iterdir())


# --------------------------------------------------------------------------- tokens


def test_tokens_are_signed_scoped_and_expiring(tmp_path):
    secret = load_or_create_secret(tmp_path / "d")
    assert stat.S_IMODE((tmp_path / "d" / "token-secret").stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path / "d") == secret
    token = issue(secret, "upload", "00123", 60)
    claims = verify(secret, token)
    assert claims.scope == "upload" and claims.case_id == "00123"
    claims.allow_upload("00123")
    with pytest.raises(TokenError) as other:
        claims.allow_upload("00124")
    assert other.value.status == 403
    with pytest.raises(TokenError):
        claims.allow_engineer()
    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged["case"] = "99999"
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="signature is not valid"):
        verify(secret, f"{head}.{forged_body}.{sig}")
    with pytest.raises(TokenError, match="signature is not valid"):
        verify(load_or_create_secret(tmp_path / "other"), token)
    with pytest.raises(TokenError, match="expired"):
        verify(secret, token, now=time.time() + 61)
    with pytest.raises(TokenError, match="not an intake token"):
        verify(secret, "Bearer nonsense")
    engineer = verify(secret, issue(secret, "engineer", None, 60))
    engineer.allow_engineer()
    with pytest.raises(TokenError, match="engineer token"):
        engineer.allow_upload(None)
    assert parse_duration("7d") == 7 * 86400 and parse_duration("30m") == 1800
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_a_ticketing_system_mints_tokens_with_any_jwt_library_and_tricks_are_refused(tmp_path):
    import jwt
    secret = load_or_create_secret(tmp_path / "d")
    now = int(time.time())
    minted = jwt.encode({"scope": "upload", "case": "00777", "iat": now, "exp": now + 600, "jti": "t1"},
                        secret, algorithm="HS256")
    claims = verify(secret, minted)
    assert (claims.scope, claims.case_id, claims.token_id) == ("upload", "00777", "t1")
    good = {"scope": "upload", "case": "1", "iat": now, "exp": now + 600}
    unsigned = jwt.encode(good, None, algorithm="none")
    other_alg = jwt.encode(good, secret * 2, algorithm="HS512")
    for token, words in [(unsigned, "not signed with HS256"), (other_alg, "not signed with HS256"),
                         (jwt.encode({**good, "scope": "admin"}, secret, algorithm="HS256"), "unknown scope"),
                         (jwt.encode({k: v for k, v in good.items() if k != "exp"}, secret, algorithm="HS256"),
                          "no 'exp' claim"),
                         (jwt.encode({k: v for k, v in good.items() if k != "case"}, secret, algorithm="HS256"),
                          "without a valid case"),
                         (jwt.encode({**good, "case": "a\x1b[2J"}, secret, algorithm="HS256"), "without a valid case"),
                         (jwt.encode({**good, "exp": "soon"}, secret, algorithm="HS256"), "whole Unix seconds"),
                         (jwt.encode({**good, "iat": now + 3600}, secret, algorithm="HS256"), "in the future"),
                         ("x" * 5000, "not an intake token")]:
        with pytest.raises(TokenError, match=words):
            verify(secret, token)
    engineer = verify(secret, jwt.encode({"scope": "engineer", "case": "9", "iat": now, "exp": now + 60},
                                         secret, algorithm="HS256"))
    assert engineer.case_id is None                        # an engineer token names no case


def test_token_command_prints_only_the_token(tmp_path):
    # a folder without intake data: no new secret the server would not know, one line, exit 1
    r = jcdiag("intake", "token", "--case", "42", "--data", tmp_path / "d")
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert "run `jcdiag intake serve --data" in r.stderr and not (tmp_path / "d").exists()
    load_or_create_secret(tmp_path / "d")          # what `intake serve --data d` makes on first start
    r = jcdiag("intake", "token", "--case", "42", "--ttl", "2h", "--data", tmp_path / "d")
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and r.stdout.startswith("eyJ")
    claims = verify(load_or_create_secret(tmp_path / "d"), r.stdout.strip())
    assert claims.case_id == "42" and 7100 < claims.expires - time.time() <= 7200
    both = jcdiag("intake", "token", "--case", "42", "--engineer", "--data", tmp_path / "d")
    assert both.returncode == 2 and "exactly one of" in both.stderr


# --------------------------------------------------------------------------- the tus service in-process


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def service(tmp_path):
    clock = Clock()
    tus = TusService(LocalStorage(tmp_path / "store"), max_size=10_000_000, expire_after=3600, clock=clock)
    secret = load_or_create_secret(tmp_path / "d")
    return tus, clock, verify(secret, issue(secret, "upload", "C1", 86400))


def _meta(bundle_id="JCD-0000-0000-0001", sha="ab" * 32) -> str:
    pairs = {"bundle_id": bundle_id, "sha256": sha, "filename": "x.7z"}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def test_abandoned_uploads_expire_and_are_swept(service):
    tus, clock, claims = service
    info = tus.create(claims, "1000", _meta())
    _, offset = tus.receive(info.id, claims, "0", 100, io.BytesIO(b"x" * 100), None)
    assert offset == 100
    clock.now += 1800
    assert tus.snapshot(info.id, claims).offset == 100          # still alive within the window
    clock.now += 3600
    with pytest.raises(HttpError) as gone:
        tus.snapshot(info.id, claims)
    assert gone.value.status == 410
    other = tus.create(claims, "1000", _meta("JCD-0000-0000-0002"))
    published = {"object": "bundles/JCD-0000-0000-0003/c-7/" + "a" * 32 + ".7z"}
    tus.storage.put_bytes(published["object"], b"published bundle")
    tus.storage.put_bytes("bundles/JCD-0000-0000-0003/c-7/record.json", json.dumps(published).encode())
    tus.storage.put_bytes("bundles/JCD-0000-0000-0004/c-7/" + "b" * 32 + ".7z", b"assembled, never published")
    clock.now += 7200
    assert tus.sweep() == 2          # the idle upload and the unpublished file
    assert list(tus.storage.list("uploads/")) == []
    assert [e.key for e in tus.storage.list("bundles/")] == [published["object"],
                                                             "bundles/JCD-0000-0000-0003/c-7/record.json"]
    with pytest.raises(HttpError) as unknown:
        tus.snapshot(other.id, claims)
    assert unknown.value.status == 404


def test_cut_bodies_are_dropped_with_a_checksum_and_kept_without(service):
    tus, _, claims = service
    info = tus.create(claims, "1000", _meta())
    chunk = b"y" * 200
    checksum = "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    with pytest.raises(ClientGone):                                        # 120 of 200 bytes arrive
        tus.receive(info.id, claims, "0", 200, io.BytesIO(chunk[:120]), checksum)
    assert tus.snapshot(info.id, claims).offset == 0
    with pytest.raises(ClientGone):
        tus.receive(info.id, claims, "0", 200, io.BytesIO(chunk[:120]), None)
    assert tus.snapshot(info.id, claims).offset == 120
    with pytest.raises(HttpError) as conflict:
        tus.receive(info.id, claims, "0", 10, io.BytesIO(b"z" * 10), None)
    assert conflict.value.status == 409 and conflict.value.headers["Upload-Offset"] == "120"
    with pytest.raises(HttpError) as bad:
        tus.receive(info.id, claims, "120", 80, io.BytesIO(chunk[:80]), "sha256 " + base64.b64encode(b"0" * 32).decode())
    assert bad.value.status == 460
    with pytest.raises(HttpError) as past_end:
        tus.receive(info.id, claims, "120", 2000, io.BytesIO(b""), None)
    assert past_end.value.status == 413
    tus.terminate(info.id, claims)
    with pytest.raises(HttpError) as deleted:
        tus.snapshot(info.id, claims)
    assert deleted.value.status == 404


def test_a_running_hash_is_trusted_only_while_the_parts_are_the_ones_it_hashed(service, tmp_path):
    """The process that stored every part in order finishes without re-hashing; a part replaced
    behind its back (another process, a hostile duplicate PATCH) makes it hash the real bytes."""
    from tests import hostile
    tus, _, claims = service
    bundle_id = "JCD-0000-0000-0A0A"
    good = hostile.simple(tmp_path / "g", edit=lambda h: h.update(bundle_id=bundle_id, case_id="C1"))
    data = good.read_bytes()
    info = tus.create(claims, str(len(data)), _meta(bundle_id, hashlib.sha256(data).hexdigest()))
    half = len(data) // 2
    tus.receive(info.id, claims, "0", half, io.BytesIO(data[:half]), None)
    part = next(tus.storage.list(f"uploads/{info.id}/parts/"))
    forged = bytearray(data[:half])
    forged[100] ^= 0xFF
    scratch = tmp_path / "forged"
    scratch.write_bytes(bytes(forged))
    tus.storage.put_file(part.key, scratch)                  # same key, other bytes
    with pytest.raises(HttpError) as refused:
        tus.receive(info.id, claims, str(half), len(data) - half, io.BytesIO(data[half:]), None)
    assert refused.value.status == 422 and "does not match the sha256 in Upload-Metadata" in str(refused.value)
    info = tus.create(claims, str(len(data)), _meta(bundle_id, hashlib.sha256(data).hexdigest()))
    tus.receive(info.id, claims, "0", half, io.BytesIO(data[:half]), None)
    snap, offset = tus.receive(info.id, claims, str(half), len(data) - half, io.BytesIO(data[half:]), None)
    assert offset == len(data) and snap.info.completed["sha256"] == hashlib.sha256(data).hexdigest()


def test_creation_rules(service):
    tus, _, claims = service
    for length, meta, status in [(None, _meta(), 400), ("0", _meta(), 400), ("20000000", _meta(), 413),
                                 ("10", "sha256 " + "x", 400), ("10", _meta(bundle_id="nope"), 400),
                                 ("10", _meta(sha="abc"), 400)]:
        with pytest.raises(HttpError) as refused:
            tus.create(claims, length, meta)
        assert refused.value.status == status, (length, meta)


# --------------------------------------------------------------------------- through HTTP, bad input


def test_wrong_token_is_refused_on_both_sides(intake, engineer, case_a_bundle, tmp_path, spool_env):
    load_or_create_secret(tmp_path / "elsewhere")          # another intake's data folder
    stranger = Intake(tmp_path / "elsewhere").token_file(tmp_path / "t", "--case", "A-1")
    r = jcdiag("upload", case_a_bundle["path"], "--server", intake.url, "--token-file", stranger,
               env=spool_env)
    assert r.returncode == 4
    assert "refused the token (401)" in r.stderr and "signature is not valid" in r.stderr
    assert "jcdiag upload --pending" in r.stderr                       # kept for later
    assert "refused POST /files/: 401" in intake.log()
    assert case_a_bundle["bundle_id"] not in visible(intake, engineer)
    assert no_trace(intake, case_a_bundle["bundle_id"])


def test_token_for_another_case_is_refused(intake, engineer, case_a_bundle, tmp_path, spool_env):
    token = intake.token_file(tmp_path / "t", "--case", "B-2")
    r = jcdiag("upload", case_a_bundle["path"], "--server", intake.url, "--token-file", token, "--json",
               env=spool_env)
    assert r.returncode == 4
    (up,) = one_json(r)["uploads"]
    assert up["status"] == "held" and "this token is for case B-2, not case A-1" in up["error"]
    assert "spool retry" in up["action"] and up["http_status"] == 403
    assert "refused POST /files/: 403" in intake.log()
    assert no_trace(intake, case_a_bundle["bundle_id"])


def test_expired_token_is_refused(intake, engineer, case_a_bundle, tmp_path, spool_env):
    token = intake.token_file(tmp_path / "t", "--case", "A-1", "--ttl", "1s")
    time.sleep(1.1)
    r = jcdiag("upload", case_a_bundle["path"], "--server", intake.url, "--token-file", token, env=spool_env)
    assert r.returncode == 4 and "token expired at" in r.stderr
    assert "401 token expired" in intake.log()
    assert no_trace(intake, case_a_bundle["bundle_id"])


def test_metadata_sha256_that_does_not_match_the_bytes(intake, engineer, case_a_bundle):
    data = Path(case_a_bundle["path"]).read_bytes()
    token = intake.token("--case", "A-1")
    with pytest.raises(UploadError) as refused:
        raw_upload(intake.url, token, data, {"bundle_id": case_a_bundle["bundle_id"], "case_id": "A-1",
                                             "sha256": hashlib.sha256(b"other").hexdigest()})
    assert refused.value.status == 422 and "does not match the sha256 in Upload-Metadata" in str(refused.value)
    assert "refused PATCH" in intake.log() and "422" in intake.log()
    assert case_a_bundle["bundle_id"] not in visible(intake, engineer)
    assert no_trace(intake, case_a_bundle["bundle_id"])
    assert not any((intake.data / "store" / "uploads").glob("*/parts/*"))


def test_bytes_that_are_not_a_bundle_or_name_another_case(intake, engineer, case_a_bundle):
    junk = os.urandom(5000)
    token_b = intake.token("--case", "B-2")
    with pytest.raises(UploadError) as junk_refused:
        raw_upload(intake.url, token_b, junk, {"bundle_id": "JCD-0000-0000-00ZZ", "sha256": hashlib.sha256(junk).hexdigest()})
    assert junk_refused.value.status == 422 and "not a readable jcdiag bundle" in str(junk_refused.value)
    data = Path(case_a_bundle["path"]).read_bytes()
    with pytest.raises(UploadError) as case_refused:        # the header says case A-1
        raw_upload(intake.url, token_b, data, {"bundle_id": case_a_bundle["bundle_id"], "case_id": "B-2",
                                               "sha256": case_a_bundle["sha256"]})
    assert "collected for case A-1, not case B-2" in str(case_refused.value)
    assert visible(intake, engineer).isdisjoint({"JCD-0000-0000-00ZZ", case_a_bundle["bundle_id"]})
    assert no_trace(intake, case_a_bundle["bundle_id"])


def test_oversized_uploads_are_refused_at_creation_and_during_patch(tmp_path, case_a_bundle, spool_env):
    with Intake(tmp_path / "small", extra=("--max-size", "4k")) as small:
        token_file = small.token_file(tmp_path / "t", "--case", "A-1")
        r = jcdiag("upload", case_a_bundle["path"], "--server", small.url, "--token-file", token_file,
                   env=spool_env)
        assert r.returncode == 4 and "over the server's limit of 4096" in r.stderr
        token = token_file.read_text().strip()
        meta = {"bundle_id": case_a_bundle["bundle_id"], "sha256": case_a_bundle["sha256"]}
        with pytest.raises(UploadError) as at_creation:
            TusClient(token).create(small.url + "/files/", 5000, meta)
        assert at_creation.value.status == 413 and "over this intake's limit of 4096" in str(at_creation.value)
        url = TusClient(token).create(small.url + "/files/", 3000, meta)
        with pytest.raises(UploadError) as during_patch:
            TusClient(token).patch(url, 0, b"x" * 3500, True, final=False)
        assert during_patch.value.status == 413 and "past Upload-Length 3000" in str(during_patch.value)
        assert "refused POST /files/: 413" in small.log() and "refused PATCH" in small.log()
        assert not (small.data / "store" / "bundles").exists() or not any((small.data / "store" / "bundles").iterdir())


def test_a_finished_bundle_id_cannot_be_uploaded_again(intake, engineer, tmp_path):
    bundle = make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case="D-4")
    token = intake.token("--case", "D-4")
    first = send(bundle["path"], intake.url, token)
    assert first.ok and first.verified
    again = send(bundle["path"], intake.url, token)          # same bytes: already there, fine
    assert again.ok and again.verified and again.bytes_sent == 0
    with pytest.raises(UploadError) as conflict:
        TusClient(token).create(intake.url + "/files/", 100, {"bundle_id": bundle["bundle_id"],
                                                               "sha256": "cd" * 32})
    assert conflict.value.status == 409 and "already uploaded" in str(conflict.value)
    head = requests.head(first.url, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"},
                         timeout=10)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == str(bundle["size"])
    assert "Upload-Checksum-Verified" in head.headers
    assert requests.delete(first.url, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"},
                           timeout=10).status_code == 403           # a finished bundle stays


def test_engineer_api_needs_an_engineer_token(intake, engineer, tmp_path):
    bundle = make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case="E-5")
    upload_token = intake.token("--case", "E-5")
    assert send(bundle["path"], intake.url, upload_token).ok
    path = f"/api/v1/bundles/{bundle['bundle_id']}"
    assert intake.get(path).status_code == 401
    refused = intake.get(path, upload_token)
    assert refused.status_code == 403 and "engineer token" in refused.json()["error"]
    assert intake.get("/api/v1/bundles/not-an-id", engineer).status_code == 400
    assert intake.get("/api/v1/bundles/JCD-0000-0000-0000", engineer).status_code == 404
    content = intake.get(path + "/content", engineer)
    assert content.headers["X-Content-SHA256"] == bundle["sha256"]
    assert content.content == Path(bundle["path"]).read_bytes()
    listed = intake.get("/api/v1/bundles?case=E-5", engineer).json()["bundles"]
    assert [b["bundle_id"] for b in listed] == [bundle["bundle_id"]]
    recipients = requests.get(intake.url + "/api/v1/recipients", timeout=10).json()["recipients"]
    assert recipients[0]["pem"].encode() == (intake.data / "support.pub.pem").read_bytes()
    bad_fetch = jcdiag("fetch", bundle["bundle_id"], "--server", intake.url, "--token-file",
                       intake.token_file(tmp_path / "u", "--case", "E-5"), "--to", tmp_path / "f")
    assert bad_fetch.returncode == 1 and "engineer token" in bad_fetch.stderr
    assert len(bad_fetch.stderr.strip().splitlines()) == 1


def test_tus_protocol_requirements(intake):
    token = intake.token("--case", "F-6")
    options = requests.options(intake.url + "/files/", timeout=10)
    assert options.status_code == 204 and options.headers["Tus-Version"] == "1.0.0"
    assert {"creation", "checksum", "termination", "expiration"} <= set(options.headers["Tus-Extension"].split(","))
    assert "sha256" in options.headers["Tus-Checksum-Algorithm"]
    no_version = requests.post(intake.url + "/files/", headers={"Authorization": f"Bearer {token}",
                                                                "Upload-Length": "10"}, timeout=10)
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    assert requests.options(intake.url + "/", timeout=10).headers.get("Tus-Resumable") is None


def test_intake_never_makes_a_private_key_when_given_recipients(tmp_path):
    from collector.envelope import keygen
    key, pub = keygen(tmp_path / "support")
    with Intake(tmp_path / "data", extra=("--recipient", pub)) as service:
        published = requests.get(service.url + "/api/v1/recipients", timeout=10).json()["recipients"]
        assert [r["pem"].encode() for r in published] == [pub.read_bytes()]
    assert not list((tmp_path / "data").glob("*.key.pem"))
    refused = jcdiag("intake", "serve", "--port", "0", "--data", tmp_path / "d2", "--recipient", key)
    assert refused.returncode == 1 and "this is a private key" in refused.stderr


@pytest.mark.timeout(60)
def test_chunks_alternating_between_two_intake_processes_on_one_local_store(tmp_path):
    """Stateless processes: every request of one upload may land on another process."""
    data = tmp_path / "shared"
    with Intake(data) as one, Intake(data) as two:
        bundle = make_bundle(tmp_path / "b", data / "support.pub.pem", case="G-7", random_bytes=600_000)
        balancer = FaultProxy([one.port, two.port])
        session = requests.Session()
        session.headers["Connection"] = "close"           # one connection per request: round robin
        try:
            result = send(bundle["path"], balancer.url, one.token("--case", "G-7"), chunk_size=64 * 1024,
                          session=session)
        finally:
            balancer.close()
        assert result.ok and result.verified, result.error
        engineer = one.token("--engineer")
        assert one.stats(engineer).get("patches", 0) >= 4 and two.stats(engineer).get("patches", 0) >= 4
        got = two.get(f"/api/v1/bundles/{bundle['bundle_id']}/content", engineer).content
        assert got == Path(bundle["path"]).read_bytes()


def test_fetch_refuses_a_download_that_does_not_match_the_record(tmp_path):
    with Intake(tmp_path / "data") as service:
        bundle = make_bundle(tmp_path / "b", service.data / "support.pub.pem", case="H-8")
        assert send(bundle["path"], service.url, service.token("--case", "H-8")).ok
        (stored,) = (service.data / "store" / "bundles" / bundle["bundle_id"]).glob("*/*.7z")
        damaged = bytearray(stored.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        stored.write_bytes(bytes(damaged))
        engineer = service.token_file(tmp_path / "e", "--engineer")
        r = jcdiag("fetch", bundle["bundle_id"], "--server", service.url, "--token-file", engineer,
                   "--to", tmp_path / "got")
        assert r.returncode == 1 and "does not match the intake's record" in r.stderr
        assert list((tmp_path / "got").iterdir()) == []                  # no partial file left

