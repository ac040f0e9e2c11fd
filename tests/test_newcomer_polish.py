"""The rough edges of a newcomer's walk-through (issue 16, items 3, 4, 5 and 7).

Warnings under ``-q`` moved into the report and the json log; ``runflow status`` after
a ``--sandbox`` run was stopped, and at 80 columns; logs that confirm saved files and
connection errors that name the host; and the small ones: one status line per run,
"did you mean", completion options only at the top, the ``--dry-run --json`` schema,
``download``'s ``--out`` default, ``run --timeout`` and ``download`` of a named run.
"""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from helpers import run_batch
from test_e2e_kill import committed_ids, launched, wait_for

from runflow_cli.api.client import RunflowClient
from runflow_cli.batch.folder_status import summarize
from runflow_cli.batch.journal import Journal, fingerprint
from runflow_cli.errors import APIConnectionError
from runflow_cli.files.folder import OutputFolder
from runflow_cli.manifest import Item

SANDBOX = {"seed": 16}
CDN = "https://cdn.example.com"
FAST = ("--poll-interval", "0.02", "--max-poll-interval", "0.1")
UNKNOWN_COLUMN = "ignoring unknown column 'title'"
REPEATED = "repeats this row"


def api(sb: Any) -> tuple[str, ...]:
    return ("--base-url", sb.base_url, "--api-key", sb.api_key)


def warned_manifest(tmp_path: Path) -> Path:
    """A manifest with an unknown column and a repeated row: two warnings, no error."""
    path = tmp_path / "warned.csv"
    path.write_text(
        "sku,image_url,elements,title\n"
        f"W-1,{CDN}/polish/w1.jpg,background_removal,Shirt\n"
        f"W-1,{CDN}/polish/w1.jpg,background_removal,Shirt\n"
        f"W-2,{CDN}/polish/w2.jpg,background_removal,Cap\n"
    )
    return path


# --- 3: -q moves warnings into the report and the json log, never drops them ---------


def test_quiet_keeps_warnings_off_stderr_and_in_the_report(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, warned_manifest(tmp_path), out, "-q")

    assert result.code == 0, result.err
    assert result.err == "" and result.out == ""  # a cron job mails nothing
    warnings = json.loads((out / "runflow-report.json").read_text())["warnings"]
    assert any(UNKNOWN_COLUMN in w for w in warnings)
    assert any("warned.csv:2" in w and REPEATED in w for w in warnings)


def test_without_quiet_warnings_are_on_stderr_and_in_the_report(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, warned_manifest(tmp_path), out, "--batch-size", "150")

    assert result.code == 0, result.err
    assert f"Warning: {UNKNOWN_COLUMN}" in result.err and "--batch-size 150" in result.err
    warnings = json.loads((out / "runflow-report.json").read_text())["warnings"]
    assert len(warnings) == 3 and "--batch-size 150" in warnings[-1]


def test_quiet_json_log_carries_warnings_as_lines(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, warned_manifest(tmp_path), out, "-q", "--log-format", "json")

    assert result.code == 0, result.err
    assert "Warning" not in result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    warnings = [line["message"] for line in lines if line["type"] == "warning"]
    assert any(UNKNOWN_COLUMN in w for w in warnings) and any(REPEATED in w for w in warnings)


def test_quiet_with_no_report_to_hold_them_still_prints_warnings(tmp_path: Path, cli: Any) -> None:
    result = cli("batch", str(warned_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                 "--dry-run", "-q")  # fmt: skip

    assert result.code == 0, result.err
    assert f"Warning: {UNKNOWN_COLUMN}" in result.err and REPEATED in result.err


# --- 4: status knows sandbox batches die with their sandbox; ids never wrap ------------


def test_status_after_an_interrupted_sandbox_run_says_its_batches_are_lost(
    tmp_path: Path, cli: Any
) -> None:
    manifest, out = warned_manifest(tmp_path), tmp_path / "out"
    args = ["batch", str(manifest), "--out", str(out), "--sandbox", "--sandbox-latency", "30",
            "--batch-size", "1", *FAST]  # fmt: skip
    with launched(args, tmp_path / "logs") as proc:
        wait_for(proc, tmp_path / "logs", "two batches", lambda: len(committed_ids(out)) == 2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
    ids = sorted(committed_ids(out))

    result = cli("status", "--out", str(out))
    assert result.code == 0, result.err
    assert "In flight" not in result.out
    lost = re.search(r"^Lost with their sandbox \(2\): (\S+), (\S+)\. ", result.out, re.MULTILINE)
    assert lost is not None and sorted(lost.groups()) == ids, result.out
    document = json.loads(cli("status", "--out", str(out), "--json").out)
    assert document["in_flight"] == [] and sorted(document["lost_with_sandbox"]) == ids

    again = cli("batch", str(manifest), "--out", str(out), "--sandbox", "--sandbox-latency",
                "0", *FAST)  # fmt: skip
    assert again.code == 0, again.err  # it waited for none of them
    after = json.loads(cli("status", "--out", str(out), "--json").out)
    assert after["rows"]["succeeded"] == 2 and sorted(after["lost_with_sandbox"]) == ids
    settled = cli("status", "--out", str(out)).out  # their rows were sent again: history
    assert "Lost with their sandbox" not in settled and "resume" not in settled


def _item(n: int) -> Item:
    return Item(index=n, line=n + 2, sku=f"S{n}", image_url=f"{CDN}/{n}.jpg",
                elements=("background_removal",), aspect_ratio=None,
                product_isolation_prompt=None, client_ref=f"S{n}", name="front")  # fmt: skip


def _sandbox_batches(folder: OutputFolder, endpoints: list[str]) -> None:
    with Journal.open(folder) as journal:
        for n, endpoint in enumerate(endpoints):
            item = _item(n)
            journal.begin_batch(
                f"key-{n}", endpoint, "{}", [(item, fingerprint(item, "runflow/dyver-removal"), 0)]
            )
            journal.batch_created(f"key-{n}", f"batch-{n}", {0: f"run-{n}"})


def test_a_running_sandbox_run_keeps_its_own_batches_in_flight(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path)
    _sandbox_batches(
        folder,
        [
            "http://127.0.0.1:5001 (sandbox aaaaaaaaaaaa)",  # an earlier --sandbox run
            "http://127.0.0.1:5002 (sandbox bbbbbbbbbbbb)",  # the one holding OUT now
            "https://api.runflow.io",  # a real batch: in flight whatever happens here
        ],
    )
    with Journal.open(folder) as journal:
        stopped = summarize(journal, folder, running=False)
        running = summarize(journal, folder, running=True)

    assert [b.batch_id for b in stopped.lost] == ["batch-0", "batch-1"]
    assert [b.batch_id for b in stopped.in_flight] == ["batch-2"]
    assert [b.batch_id for b in running.lost] == ["batch-0"]
    assert [b.batch_id for b in running.in_flight] == ["batch-1", "batch-2"]
    with folder.lock("runflow batch (test)"):
        assert folder.in_use()
    assert not folder.in_use()


def test_status_at_80_columns_never_wraps_an_id_or_key(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert run_batch(cli, sb, warned_manifest(tmp_path), out, "--batch-size", "1").code == 0
    monkeypatch.setenv("COLUMNS", "80")

    result = cli("status", "--out", str(out))

    assert result.code == 0, result.err
    document = json.loads(cli("status", "--out", str(out), "--json").out)
    lines = result.out.splitlines()
    for batch in document["batches"]:  # each whole on one line, to be copied
        assert any(batch["batch_id"] in line for line in lines), batch["batch_id"]
        assert any(batch["batch_key"] in line for line in lines), batch["batch_key"]
    table = lines[1 : lines.index("Rows") - 1]  # between the title and "Sent to …"
    assert table and max(len(line) for line in table) <= 80, table


# --- 5: logs confirm saved files; connection errors name the host ----------------------


def test_plain_log_confirms_the_finals_saved_per_batch(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    result = run_batch(cli, sb, warned_manifest(tmp_path), out, "--batch-size", "1",
                       "--log-format", "plain")  # fmt: skip

    assert result.code == 0, result.err
    confirmed = re.findall(rf"batch (\S+): 1 final saved to {re.escape(str(out))}$", result.err,
                           re.MULTILINE)  # fmt: skip
    assert sorted(confirmed) == sorted(b["id"] for b in sb.batches()) and len(confirmed) == 2


def test_a_refused_connection_names_the_host_and_port() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        RunflowClient("k", f"http://127.0.0.1:{port}", max_retries=0) as client,
        pytest.raises(APIConnectionError) as caught,
    ):
        client.get_batch("b-1")
    assert str(caught.value).endswith(f"could not connect to 127.0.0.1:{port}")


# --- 7: the small ones -------------------------------------------------------------------


def test_run_says_succeeded_once(sb: Any, tmp_path: Path, cli: Any) -> None:
    result = cli("run", f"{CDN}/polish/once.jpg", "--elements", "background_removal",
                 "--out", str(tmp_path / "out"), *FAST, *api(sb))  # fmt: skip

    assert result.code == 0, result.err
    said = [line for line in (result.out + result.err).splitlines() if line.startswith("Run ")]
    assert [line for line in said if "succeeded" in line] == [
        line for line in said if re.fullmatch(r"Run \S+: succeeded in [\d.]+ s", line)
    ]
    assert len([line for line in said if "succeeded" in line]) == 1, said


def test_mistyped_commands_and_options_get_a_did_you_mean(cli: Any) -> None:
    command = cli("bacth")
    assert command.code == 2 and "No such command 'bacth'. Did you mean 'batch'?" in command.err
    option = cli("status", "--ouT", "x")
    assert option.code == 2 and "No such option: --ouT. Did you mean '--out'?" in option.err
    assert "Did you mean" not in cli("zzzz").err


def test_completion_options_only_on_the_top_level_command(cli: Any) -> None:
    assert "--install-completion" in cli("-h").out
    for command in ("batch", "status", "run", "download", "secrets", "config"):
        shown = cli(command, "-h")
        assert shown.code == 0, shown.err
        assert "--install-completion" not in shown.out and "--show-completion" not in shown.out


def test_dry_run_json_is_versioned_with_snake_case_keys(tmp_path: Path, cli: Any) -> None:
    result = cli("batch", str(warned_manifest(tmp_path)), "--out", str(tmp_path / "out"),
                 "--dry-run", "--json")  # fmt: skip

    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["schema_version"] == 3
    assert all(re.fullmatch(r"[a-z_]+", key) for key in document["plan"]), document["plan"]
    assert document["plan"]["to_process"] == 2 and document["plan"]["repeated_rows"] == 1


def test_download_has_the_same_out_default_as_batch_and_run(
    sb: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_batch(cli, sb, warned_manifest(tmp_path), tmp_path / "first").code == 0
    (batch,) = sb.batches()
    monkeypatch.chdir(tmp_path)

    result = cli("download", batch["id"], *api(sb))

    assert result.code == 0, result.err
    assert (tmp_path / "runflow-output" / "W-1" / "w1.webp").is_file()
    assert (tmp_path / "runflow-output" / "W-2" / "w2.webp").is_file()


def test_run_timeout_ends_the_wait_and_says_how_to_fetch_the_final(
    sb: Any, tmp_path: Path, cli: Any
) -> None:
    sb.settings.latency = 30.0  # the run is still going when the wait ends
    out = tmp_path / "out"
    result = cli("run", f"{CDN}/polish/slow.jpg", "--elements", "background_removal",
                 "--out", str(out), "--timeout", "0.2", *FAST, *api(sb))  # fmt: skip

    assert result.code == 1
    run_id = re.search(r"Run (\S+) created", result.err)
    assert run_id is not None
    assert f"run {run_id[1]} is still" in result.err and "after --timeout 0.2 s" in result.err
    assert f"runflow download {run_id[1]} --out {out}" in result.err
    assert not list(out.glob("*/*.webp"))


def test_download_of_a_run_saves_it_where_run_put_it(sb: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out"
    made = cli("run", f"{CDN}/polish/shirt.jpg", "--elements", "background_removal",
               "--sku", "TEE-9", "--name", "front", "--out", str(out), *FAST, *api(sb))  # fmt: skip
    assert made.code == 0, made.err
    final = out / "TEE-9" / "front.webp"
    run_id = re.search(r"Run (\S+): succeeded", made.out)
    assert run_id is not None and final.is_file()
    final.unlink()

    again = cli("download", run_id[1], "--out", str(out), *api(sb))

    assert again.code == 0, again.err
    assert final.is_file() and not (out / "TEE-9" / "shirt.webp").exists()
    elsewhere = cli("download", run_id[1], "--out", str(tmp_path / "other"), *api(sb))
    assert elsewhere.code == 0 and (tmp_path / "other" / "TEE-9" / "shirt.webp").is_file()
