"""Redaction v2 (issue 12): command lines, structured formats, vendor tokens, must-stay corpus.

The forms live in ``tests/secret_forms.py``.  Each is checked on the Redactor with the
artifact name a collect gives it, planted at random chunk boundaries (hypothesis), and
through a whole ``collect`` opened with the stock 7z and openssl (``test_collect_*``).
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.argv import tokenize, unquoted
from collector.redact import Redactor, is_command_listing
from collector.data import read_data
from collector.vendor_rules import WINDOW_AFTER, WINDOW_BEFORE, VendorRules, default_vendor_rules, shannon
from tests.test_redact import scrub_chunks
from tests.secret_forms import FORMS, MUST_STAY, MUST_STAY_TEXT, PS_HEAD, ps_line

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "secret-rules-source"
FILLER = [
    "2026-11-20 10:00:00 [INFO] Heartbeat ok in 12ms (next in 60s)\n",
    "2026-11-20 10:00:00 [INFO] GET https://console.jumpcloud.com/api/v2/systems/5f3a9c2e1b7d4f6a8c0e2b4d 200\n",
    "2026-11-20 10:00:00 [INFO] Applying policy 3f2504e0-4f89-11d3-9a0c-0305e82c3301 result=success\n",
    ps_line("/usr/sbin/sshd -D", 811),
    "\n",
]


def artifact_for(form) -> str:
    if form.where == "ps":
        return "commands/ps-aux.txt"
    if form.where == "log":
        return "logs/jcagent.log"
    return f"attachments/settings{form.suffix}"


def scrub(data: bytes, name: str, sizes=None, redactor=None) -> tuple[bytes, Redactor]:
    """``data`` scrubbed as artifact ``name``, in chunks of ``sizes`` (default: whole)."""
    redactor = redactor or Redactor()
    return scrub_chunks(data, sizes or [len(data) or 1], redactor, name), redactor


def check(form, out: str) -> None:
    for secret in form.secrets:
        assert secret not in out, f"{form.name}: {secret!r} survived:\n{out}"
    for kept in form.keep:
        assert kept in out, f"{form.name}: neighbour {kept!r} was lost:\n{out}"


# ----------------------------------------------------------------------------- every form

@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
def test_form_is_redacted_and_its_neighbours_stay(form):
    out, redactor = scrub(form.text.encode(), artifact_for(form))
    check(form, out.decode())
    hits = redactor.report()["artifacts"][artifact_for(form)]["hits"]
    assert sum(hits.values()) >= 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
def test_form_planted_at_random_chunk_boundaries(form, data):
    """Filler before and after, cut in chunks of random sizes so that a chunk boundary
    falls anywhere in the form (inside the secret, the key, the quotes)."""
    before = "".join(data.draw(st.lists(st.sampled_from(FILLER), max_size=4), label="before"))
    after = "".join(data.draw(st.lists(st.sampled_from(FILLER), max_size=3), label="after"))
    text = (before + form.text + after).encode()
    at = len(before.encode())
    # One boundary planted inside the form itself, then random sizes.
    inside = data.draw(st.integers(min_value=0, max_value=len(form.text.encode())), label="cut")
    sizes = [max(1, at + inside)] + data.draw(st.lists(st.integers(1, 64), min_size=1, max_size=6),
                                              label="sizes")
    name = artifact_for(form)
    whole, _ = scrub(text, name)
    chunked, _ = scrub(text, name, sizes)
    assert chunked == whole
    check(form, chunked.decode())


def test_every_form_at_once_in_one_artifact_of_each_kind():
    for where in ("log", "ps", "config"):
        forms = [f for f in FORMS if f.where == where]
        text = "".join(f.text for f in forms)
        out, _ = scrub(text.encode(), artifact_for(forms[0]), [97, 13, 4096])
        for form in forms:
            for secret in form.secrets:
                assert secret not in out.decode(), (form.name, secret)


# ----------------------------------------------------------------------------- must stay

@pytest.mark.parametrize("name", ["logs/jcagent.log", "commands/ps-aux.txt", "attachments/notes.yaml",
                                  "commands/journalctl-jcagent.txt"])
def test_must_stay_corpus_is_never_redacted(name):
    out, redactor = scrub(MUST_STAY_TEXT.encode(), name, [61, 7, 4096])
    text = out.decode()
    for value in MUST_STAY:
        assert value in text, f"{value!r} was redacted in {name}:\n{text}"
    assert redactor.report()["total_redactions"] == 0


def test_must_stay_values_survive_as_ps_lines_and_structured_json():
    lines = PS_HEAD + "".join(ps_line(f"/opt/jc/bin/jumpcloud-agent --id {v}") for v in MUST_STAY[:8])
    out, _ = scrub(lines.encode(), "commands/ps-aux.txt")
    for value in MUST_STAY[:8]:
        assert value in out.decode()
    doc = json.dumps({"systemKey": MUST_STAY[0], "certuuid": MUST_STAY[2], "version": "2.14.1",
                      "agentServerHost": "agent.jumpcloud.com", "note": MUST_STAY[-1]}).encode()
    assert Redactor().structured("config/jcagent.conf", doc, "json") == doc


# ----------------------------------------------------------------------------- command lines

@pytest.mark.parametrize("line, tokens", [
    ("mysql -uroot -pS3cr3t db1", ["mysql", "-uroot", "-pS3cr3t", "db1"]),
    ("curl --user 'a b:c d' -X POST", ["curl", "--user", "'a b:c d'", "-X", "POST"]),
    ('cmd.exe /c "C:\\Program Files\\x.exe" /p:"a \\" b"', ['cmd.exe', '/c', '"C:\\Program Files\\x.exe"',
                                                          '/p:"a \\" b"']),
    ("echo a\\ b 'unterminated quote", ["echo", "a\\ b", "'unterminated quote"]),
])
def test_tokenizer_posix_and_windows_quoting(line, tokens):
    raw = line.encode()
    assert [raw[s:e].decode() for s, e in tokenize(raw)] == tokens


def test_unquoted_takes_the_quotes_off_a_whole_quoted_token():
    raw = b"'abc' \"d\" e"
    spans = tokenize(raw)
    assert [raw[slice(*unquoted(raw, *t))] for t in spans] == [b"abc", b"d", b"e"]


@pytest.mark.parametrize("command, secret, kept", [
    ("mysql -uroot -pSECRETvalue1 db1", "SECRETvalue1", ["db1", "-uroot"]),
    ("mysql -p db1", None, ["db1"]),                                   # -p alone: prompts, db1 is a name
    ("7z a x.7z -pSECRETvalue2", "SECRETvalue2", ["x.7z"]),
    ("curl -u alice https://h", None, ["alice"]),                       # no password: curl prompts
    ("docker login --password SECRETvalue3 registry.example.com", "SECRETvalue3", ["registry.example.com"]),
    ("sc.exe config svc obj= CORP\\svc password= SECRETvalue4", "SECRETvalue4", ["CORP\\svc"]),
    ("cmdkey /add:srv /user:bob /pass:SECRETvalue5", "SECRETvalue5", ["/user:bob"]),
    ("net use \\\\srv\\ipc$ * /user:bob", None, ["/user:bob"]),          # "*": asks for it
    ("powershell -Command Get-Thing -Credential $cred -Password:$pw", None, ["$cred", "$pw"]),
    ("openssl rsa -in k.pem -passin env:KEYPASS", None, ["env:KEYPASS"]),
    ("mysql -uroot -pSECRETvalue6; ls -p /tmp", "SECRETvalue6", ["/tmp"]),
])
def test_command_line_value_goes_never_its_neighbour(command, secret, kept):
    for name, text in (("commands/ps-aux.txt", ps_line(command)),
                       ("logs/jcagent.log", f"2026-11-20 10:00:00 [INFO] exec: {command}\n")):
        out = scrub(text.encode(), name)[0].decode()
        if secret:
            assert secret not in out, (name, out)
        else:
            assert "REDACTED" not in out, (name, out)
        for k in kept:
            assert k in out, (name, k, out)


@pytest.mark.parametrize("name, listing", [
    ("commands/ps-aux.txt", True), ("commands/tasklist-v.txt", True), ("commands/wmic-process.txt", True),
    ("commands/systemctl-status-jcagent.txt", True), ("commands/launchctl-list.txt", True),
    ("commands/df-h.txt", False), ("logs/ps-aux.txt", False), ("commands/uname-a.txt", False),
])
def test_listings_are_told_by_artifact_name(name, listing):
    assert is_command_listing(name) is listing


def test_generic_flags_apply_to_every_line_of_a_listing_only():
    text = "worker --token SECRETtokenValue7 --port 80\n"
    assert b"SECRETtokenValue7" not in scrub(text.encode(), "commands/ps-aux.txt")[0]
    # In prose, "token" followed by a short word is not a flag.
    prose = b"2026-11-20 10:00:00 [INFO] Token refreshed ok\n"
    assert scrub(prose, "logs/jcagent.log")[0] == prose


# ----------------------------------------------------------------------------- structure

def test_yaml_value_below_its_key_ends_at_the_next_key_of_the_same_depth():
    text = b"a:\n  password:\n    s3cret-one\n\n  user: bob\nb: 1\n"
    out = scrub(text, "attachments/x.yaml")[0]
    assert b"s3cret-one" not in out and b"user: bob" in out and b"b: 1" in out


def test_yaml_pending_key_in_a_log_does_not_swallow_the_next_line():
    text = b"2026-11-20 [INFO] Enter password:\n2026-11-20 [INFO] next line stays\n"
    assert scrub(text, "logs/jcagent.log")[0] == text


def test_plist_non_string_value_is_left_alone():
    text = b"<key>PasswordRequired</key>\n<true/>\n<key>Name</key>\n<string>alice</string>\n"
    out = scrub(text, "attachments/x.plist")[0]
    assert b"<true/>" in out and b"alice" in out


def test_xml_pair_without_a_secret_name_is_left_alone():
    text = b'<add key="Server" value="dc01.corp"/>\n<add value="x" name="Mode"/>\n'
    assert scrub(text, "attachments/app.config")[0] == text


def test_unquoted_value_runs_to_whitespace_not_to_separators():
    out = scrub(b"password=a;b&c,d next\n", "logs/x.log")[0]
    assert out == b"password=[REDACTED:password] next\n"


def test_url_query_value_still_ends_at_ampersand():
    out = scrub(b"GET /cb?code=1&access_token=abc.def&state=x\n", "logs/x.log")[0]
    assert out == b"GET /cb?code=1&access_token=[REDACTED:token]&state=x\n"


# ----------------------------------------------------------------------------- vendor rules

def test_at_least_150_vendor_token_formats_are_active_and_every_skip_has_a_reason():
    vendor = default_vendor_rules()
    assert len(vendor.rules) >= 150
    assert len(vendor.rules) + len(vendor.skipped) == vendor.upstream_rules == 222
    assert all(reason for reason in vendor.skipped.values())


def test_redaction_report_names_rule_and_upstream_id_of_every_hit():
    forms = [f for f in FORMS if f.name in ("slack-bot-token", "gitlab-pat", "mysql-glued", "yaml-next-line")]
    redactor = Redactor()
    for form in forms:
        scrub(form.text.encode(), artifact_for(form), redactor=redactor)
    report = redactor.report()
    described = {r["id"]: r for r in report["rules"]}
    for rule_id in report["totals"]:
        assert rule_id in described, rule_id
    assert described["gitleaks:slack-bot-token"]["upstream_id"] == "slack-bot-token"
    assert described["gitleaks:gitlab-pat"]["upstream"] == "gitleaks"
    assert "command-line" in report["totals"]
    assert report["vendor_rules"]["active"] >= 150
    assert report["vendor_rules"]["skipped"]["generic-api-key"]


def _table(rules, allowlist=None) -> VendorRules:
    return VendorRules({"format": "jcdiag-vendor-rules", "commit": "c" * 40, "upstream_rules": len(rules),
                        "allowlist": allowlist or {}, "rules": rules, "skipped": []})


def test_entropy_threshold_and_allowlists_keep_low_entropy_and_listed_values():
    rule = {"id": "demo-token", "description": "demo", "keywords": ["dmo_"], "regex": r"dmo_[a-z0-9]{12}",
            "entropy": 3.0, "allowlists": [{"target": "secret", "regexes": ["example"]},
                                           {"target": "line", "regexes": ["# test fixture"]}]}
    redactor = Redactor(vendor_rules=_table([rule], {"stopwords": ["0000"]}))
    cases = {
        b"dmo_k3f9z2m8q1w7 here\n": True,          # high entropy: a token
        b"dmo_aaaaaaaaaaaa here\n": False,         # entropy below 3.0
        b"dmo_exampleq7z2 here\n": False,          # rule allowlist on the secret
        b"dmo_k3f9z2m8q1w7 # test fixture\n": False,   # rule allowlist on the line
        b"dmo_k3f90000q1w7 here\n": False,         # global stopword
    }
    for line, redacted in cases.items():
        out = scrub(line, "logs/x.log", redactor=redactor)[0]
        assert (b"[REDACTED:gitleaks:demo-token]" in out) is redacted, line
    assert shannon(b"aaaa") == 0 and round(shannon(b"ab"), 3) == 1.0


def test_vendor_rule_sees_only_a_bounded_window_around_its_keyword(monkeypatch):
    """Hostile text: a rule whose regex could run away is only ever given a bounded
    stretch of the line, whatever the line's length and the number of keywords."""
    rule = {"id": "slow", "description": "d", "keywords": ["zzk"], "regex": r"zzk[a-z ]*x"}
    vendor = _table([rule])
    seen = []
    real = vendor._run

    def spy(rule, orig, ws, we, add):
        seen.append(we - ws)
        return real(rule, orig, ws, we, add)

    monkeypatch.setattr(vendor, "_run", spy)
    line = b"zzk " * 50_000 + b"\n"
    out, _ = scrub(line, "logs/x.log", redactor=Redactor(vendor_rules=vendor))
    assert out == line
    assert seen and max(seen) <= WINDOW_BEFORE + WINDOW_AFTER
    assert len(seen) <= 2 * len(line) // (WINDOW_AFTER // 2) + 2     # windows do not pile up


def test_the_shipped_table_compiles_each_regex_on_first_use_and_every_one_compiles():
    """Loading the shipped table compiles nothing (a start-up cost of every run); each of
    its regexes does compile here, so the lazy table is the eager one."""
    vendor = VendorRules.load()
    assert not any("rx" in vars(rule) for rule in vendor.rules)
    eager = VendorRules(json.loads(read_data("vendor_rules.json")[0]))
    assert [r.upstream_id for r in eager.rules] == [r.upstream_id for r in vendor.rules]
    assert all(vendor._compiles(rule) for rule in vendor.rules)
    assert vendor.summary() == eager.summary()


def test_a_lazy_regex_that_does_not_compile_is_skipped_and_counted_when_first_triggered():
    doc = {"format": "jcdiag-vendor-rules", "commit": "c" * 40, "upstream_rules": 2, "allowlist": {},
           "skipped": [], "rules": [
               {"id": "bad", "description": "d", "keywords": ["bad_"], "regex": "bad_(unclosed"},
               {"id": "good", "description": "d", "keywords": ["gd_"], "regex": "gd_[0-9]{6}"}]}
    vendor = VendorRules(doc, lazy=True)
    assert vendor.summary()["active"] == 2 and "bad" not in vendor.skipped
    out, _ = scrub(b"bad_x12345678 gd_123456\n", "logs/x.log", redactor=Redactor(vendor_rules=vendor))
    assert b"[REDACTED:gitleaks:good]" in out and b"bad_x12345678" in out
    assert "bad" in vendor.skipped and vendor.summary()["active"] == 1


def test_a_regex_that_does_not_compile_here_is_skipped_and_counted():
    vendor = _table([{"id": "bad", "description": "d", "keywords": ["bad_"], "regex": "bad_(unclosed"},
                     {"id": "good", "description": "d", "keywords": ["gd_"], "regex": "gd_[0-9]{6}"}])
    assert [r.upstream_id for r in vendor.rules] == ["good"]
    assert "bad" in vendor.skipped


# ----------------------------------------------------------------------------- the build script

def _build_module():
    spec = importlib.util.spec_from_file_location("build_secret_rules", REPO / "scripts" / "build_secret_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("go, python", [
    ("(?i)abc", "(?i)abc"),
    (r"\b(p8e-(?i)[a-z0-9]{32})", r"\b(p8e-(?i:[a-z0-9]{32}))"),
    ("(a(?i)b|c)d", "(a(?i:b)|(?i:c))d"),
    (r"[[:alnum:]_]+\z", r"[0-9A-Za-z_]+\Z"),
    ("(?<name>x)", "(?P<name>x)"),
    ("a{,3}", r"a\{,3}"),
])
def test_go_regex_translation(go, python):
    assert _build_module().translate(go) == python


@pytest.mark.parametrize("go", [r"\p{L}+", r"(?U)a+", r"\Qa.b\E", "(unbalanced", "[[:nope:]]",
                                r"(?:a.*)+b", r"x(?:[\r\n]{1,2}.*?){1,5}y"])
def test_untranslatable_go_regex_is_refused(go):
    build = _build_module()
    with pytest.raises(build.Untranslatable):
        build.translate(go)


def test_committed_vendor_table_is_what_the_build_script_makes(tmp_path):
    """Re-runnable and reproducible: the same source gives the same bytes."""
    if not (SOURCE / "gitleaks.toml").is_file():
        pytest.skip(f"{SOURCE} is not here")
    out = tmp_path / "vendor_rules.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_secret_rules.py"), "--source", str(SOURCE),
                    "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == (REPO / "collector" / "data" / "vendor_rules.json").read_bytes()
    assert (tmp_path / "LICENSE-gitleaks.txt").read_bytes() == \
        (REPO / "collector" / "data" / "LICENSE-gitleaks.txt").read_bytes()
    assert "MIT" in (tmp_path / "LICENSE-gitleaks.txt").read_text()


def test_build_script_refuses_a_source_without_its_licence(tmp_path):
    (tmp_path / "gitleaks.toml").write_text('[[rules]]\nid = "x"\nregex = "x"\nkeywords = ["x"]\n')
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_secret_rules.py"), "--source",
                        str(tmp_path), "--out", str(tmp_path / "out.json")], capture_output=True, text=True)
    assert r.returncode == 1 and "LICENSE" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("line, secret, kept", [
    (b'2200 powershell.exe powershell -Command "$p = ConvertTo-SecureString \'Pa55w0rd!x\' -AsPlainText"',
     b"Pa55w0rd!x", b"-AsPlainText"),
    (b'2201 bash bash -c "mysql -uroot -pTopSecret9 db1 && echo done"', b"TopSecret9", b"db1"),
    (b'2202 cmd.exe cmd /c "net use \\\\srv\\s /user:D\\u Pw0rd!23 && dir"', b"Pw0rd!23", b"D\\u"),
], ids=["powershell-command", "sh-c", "cmd-c"])
def test_a_script_passed_as_one_quoted_argument_is_read_as_a_command_line(line, secret, kept):
    """Windows process command lines (process-command-lines.txt) and shells wrap the real
    command in one quoted argument: the secret inside is hidden, its neighbours kept."""
    from collector.redact import Redactor
    scrub = Redactor().text_stream("commands/process-command-lines.txt")
    out = scrub.feed(line + b"\n") + scrub.close()
    assert secret not in out and kept in out


def test_windows_declares_process_command_lines_for_redaction():
    from collector.redact import is_command_listing
    from collector.sources import CommandSource
    from platforms.windows import Windows
    dests = [s.dest for s in Windows("/nonexistent-root", live=False).sources() if isinstance(s, CommandSource)]
    assert "process-command-lines.txt" in dests and is_command_listing("commands/process-command-lines.txt")
