"""``runflow run``, ``download``, ``cancel`` and ``secrets create``: the real CLI against the
sandbox over loopback; respx only where the sandbox cannot misbehave (a cancel route
answering 405), plus plain units for the wait loop."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from runflow_cli.api.client import RunflowClient
from runflow_cli.errors import UsageError
from runflow_cli.files.runs import Polling, wait_for_run
from runflow_cli.manifest.run_args import parse_metadata, prepare_run

pytest.importorskip("fastapi", reason="the sandbox extra is not installed")

from runflow_cli.sandbox import Sandbox, SandboxSettings

FAST = ("--poll-interval", "0.02", "--max-poll-interval", "0.1")
CDN = "https://cdn.example.com"
TWO = "tag_removal;background_removal"


SANDBOX = {"seed": 3, "image_size": 64}


@pytest.fixture(scope="module")
def slow() -> Iterator[Sandbox]:
    """One worker and 30 s per stage: whatever is created here stays queued or running.

    Stopping the sandbox interrupts the stage wait, so teardown is quick.
    """
    with Sandbox(SandboxSettings(workers=1, latency=30.0, seed=4, image_size=64)) as sb:
        yield sb


def api(sb: Sandbox) -> tuple[str, ...]:
    return ("--base-url", sb.base_url, "--api-key", sb.api_key)


def client_for(sb: Sandbox) -> RunflowClient:
    return RunflowClient(sb.api_key, sb.base_url)


def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll observable state (no fixed sleeps) until ``check`` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for the sandbox"
        time.sleep(0.01)


def finished_batch(sb: Sandbox, inputs: list[dict[str, Any]]) -> str:
    with client_for(sb) as client:
        batch_id = str(client.create_batch(inputs).id)
        until(lambda: client.get_batch(batch_id).terminal)
    return batch_id


def item(url: str, client_ref: str | None = None, elements: str = "tag_removal") -> dict[str, Any]:
    body: dict[str, Any] = {"image_url": url, "config": {"elements": elements.split(";")}}
    if client_ref is not None:
        body["client_ref"] = client_ref
    return body


def is_webp(path: Path) -> bool:
    data = path.read_bytes()
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def files_under(folder: Path) -> set[str]:
    """The files under ``folder``, but for OUT/.runflow (where `run` records its runs)."""
    found = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    return {p.as_posix() for p in found if p.parts[0] != ".runflow"}


# --- runflow run ----------------------------------------------------------------


def test_run_saves_the_final_and_stages_under_sku_and_name(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    url = f"{CDN}/tees/shirt.jpg?w=800"
    result = cli("run", url, "--elements", TWO, "--sku", "SKU-1", "--out", str(out),
                 "--keep-intermediates", *FAST, *api(sb))  # fmt: skip

    assert result.code == 0, result.err
    final = out / "SKU-1" / "shirt.webp"
    assert is_webp(final)
    assert files_under(out) == {
        "SKU-1/shirt.webp",
        "SKU-1/shirt.stages/tag_remover_00001_.webp",
        "SKU-1/shirt.stages/bg_remover_00001_.webp",
    }
    assert "succeeded" in result.out and str(final) in result.out
    run_id = result.out.split()[1].rstrip(":")
    with client_for(sb) as client:
        assert client.get_run(run_id).item.client_ref == "SKU-1"
    assert f"Run {run_id} created." in result.err  # printed before the wait
    assert sb.files_auth_header_count == 0


def test_run_defaults_sku_and_name_to_the_url_stem_and_prints_json(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = cli("run", f"{CDN}/x/boot.png", "--elements", "background_removal",
                 "--aspect-ratio", "4:5", "--out", str(out), "--json", *FAST, *api(sb))  # fmt: skip

    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["status"] == "succeeded" and document["exit_code"] == 0
    assert document["items"][0]["path"] == str(out / "boot" / "boot.webp")
    assert is_webp(out / "boot" / "boot.webp")


def test_run_that_fails_exits_1_naming_the_error_kind(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    out = tmp_path / "out"
    result = cli("run", f"{CDN}/x/fail-shirt.jpg", "--elements", TWO, "--out", str(out),
                 *FAST, *api(sb))  # fmt: skip

    assert result.code == 1
    assert "failed [upstream_failed]" in result.out
    assert not out.exists() or files_under(out) == set()


def test_run_no_wait_prints_an_id_the_api_knows(sb: Sandbox, cli: Any) -> None:
    result = cli("run", f"{CDN}/x/cap.jpg", "--elements", TWO, "--no-wait",
                 "--metadata", "campaign=spring", "--metadata", "sku=123", *api(sb))  # fmt: skip

    assert result.code == 0, result.err
    run_id = result.out.strip()
    with client_for(sb) as client:
        run = client.get_run(run_id)
    assert run.raw["metadata"] == {"campaign": "spring", "sku": "123"}
    assert sb.count("GET", "/v1/runs/") == 1  # ours: --no-wait polled nothing

    as_json = cli("run", f"{CDN}/x/cap.jpg", "--elements", TWO, "--no-wait", "--json", *api(sb))
    assert as_json.code == 0
    assert json.loads(as_json.out)["run_id"]


def test_run_rejects_bad_arguments_like_a_manifest_row_and_sends_nothing(
    sb: Sandbox, cli: Any
) -> None:
    result = cli("run", "ftp://x/y.jpg", "--elements", "tag_remval", "--aspect-ratio", "0:1",
                 "--sku", "a/b", *api(sb))  # fmt: skip

    assert result.code == 2
    assert "4 problems" in result.err
    for words in ("path separator", "not an http(s) URL", "did you mean 'tag_removal'", "0:1"):
        assert words in result.err
    bad_metadata = cli("run", f"{CDN}/a.jpg", "--elements", TWO, "--metadata", "novalue", *api(sb))
    assert bad_metadata.code == 2 and "KEY=VALUE" in bad_metadata.err
    assert sb.requests == []


# --- runflow download -----------------------------------------------------------


def test_download_of_a_mixed_batch_places_items_by_client_ref(
    sb: Sandbox, tmp_path: Path, cli: Any
) -> None:
    batch_id = finished_batch(
        sb,
        [
            item(f"{CDN}/a/front.jpg", "SKU-A"),
            item(f"{CDN}/b/front.jpg?v=2", "SKU-A"),
            item(f"{CDN}/c/fail-back.jpg", "SKU-B"),
            item(f"{CDN}/d/side.jpg"),
            item(f"{CDN}/e/x.jpg", "../../escape"),
        ],
    )
    out = tmp_path / "out"
    result = cli("download", batch_id, "--out", str(out), *api(sb))

    assert result.code == 1, result.err
    assert files_under(out) == {
        "SKU-A/front.webp",
        "SKU-A/front-2.webp",
        "item-3/side.webp",
        "___.._escape/x.webp",  # leading dots become _: no hidden folder
    }
    assert all(is_webp(out / p) for p in files_under(out))
    assert files_under(tmp_path) == {f"out/{p}" for p in files_under(out)}
    assert "4 of 5 finals saved" in result.out
    assert "item 2, SKU SKU-B (fail-back): failed [upstream_failed]" in result.out
    assert sb.files_auth_header_count == 0

    again = cli("download", batch_id, "--out", str(out), "--json", *api(sb))
    document = json.loads(again.out)
    assert again.code == 1 and document["saved"] == 4 and document["kind"] == "batch"
    assert [i["status"] for i in document["items"]].count("failed") == 1


def test_download_of_a_run_id(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    with client_for(sb) as client:
        run_id = str(client.create_run(item(f"{CDN}/r/jacket.jpg", "SKU-R")).id)
        until(lambda: client.get_run(run_id).status == "succeeded")
    out = tmp_path / "out"
    result = cli("download", run_id, "--out", str(out), "--keep-intermediates", *api(sb))

    assert result.code == 0, result.err
    assert files_under(out) == {"SKU-R/jacket.webp", "SKU-R/jacket.stages/tag_remover_00001_.webp"}
    assert "1 of 1 finals saved" in result.out


def test_download_of_an_unknown_id_exits_2(sb: Sandbox, tmp_path: Path, cli: Any) -> None:
    result = cli("download", "no-such-id", "--out", str(tmp_path / "out"), *api(sb))

    assert result.code == 2
    assert "no batch or run with that id" in result.err
    assert not (tmp_path / "out").exists()


def test_download_of_a_batch_still_processing_saves_nothing(
    slow: Sandbox, tmp_path: Path, cli: Any
) -> None:
    with client_for(slow) as client:
        batch_id = str(client.create_batch([item(f"{CDN}/s/a.jpg", "S")]).id)
    out = tmp_path / "out"
    result = cli("download", batch_id, "--out", str(out), *api(slow))

    assert result.code == 1
    assert "is not finished yet" in result.err and "Wait for it" in result.err
    assert not out.exists()


# --- runflow cancel -------------------------------------------------------------


def test_cancel_of_a_queued_batch(slow: Sandbox, cli: Any) -> None:
    with client_for(slow) as client:
        client.create_run(item(f"{CDN}/s/blocker.jpg"))  # keeps the one worker busy
        batch_id = str(client.create_batch([item(f"{CDN}/s/{n}.jpg") for n in "abc"]).id)
    result = cli("cancel", batch_id, *api(slow))

    assert result.code == 0, result.err
    assert f"Cancel accepted for batch {batch_id}: status cancelled" in result.out
    assert "3 cancelled" in result.out
    with client_for(slow) as client:
        assert client.get_batch(batch_id).status == "cancelled"


def test_cancel_of_a_finished_batch_says_so_and_exits_1(sb: Sandbox, cli: Any) -> None:
    batch_id = finished_batch(sb, [item(f"{CDN}/t/a.jpg")])
    result = cli("cancel", batch_id, *api(sb))

    assert result.code == 1
    assert "has already finished (status succeeded): nothing to cancel" in result.err
    assert sb.count("POST", f"/v1/batches/{batch_id}/cancel") == 1


@pytest.mark.parametrize("status", [404, 405])
def test_cancel_route_rejected_by_the_service(status: int, cli: Any) -> None:
    base = "https://api.runflow.test"
    with respx.mock(base_url=base, assert_all_called=True) as mock:
        mock.get("/v1/batches/b1").respond(200, json={"id": "b1", "status_code": "running"})
        mock.post("/v1/batches/b1/cancel").respond(
            status, json={"code": "NOT_FOUND", "message": "no route"}
        )
        result = cli("cancel", "b1", "--base-url", base, "--api-key", "rf_test_x")

    assert result.code == 2
    assert "the service does not accept cancel for this id" in result.err
    assert "not in the vendor reference" in result.err


# --- runflow secrets create -----------------------------------------------------


def test_secrets_create_prints_the_secret_once_with_a_warning(sb: Sandbox, cli: Any) -> None:
    result = cli("secrets", "create", "--label", "webhook-prod", *api(sb))

    assert result.code == 0, result.err
    assert result.out.strip().startswith("rf_whsec_") and len(result.out.split()) == 1
    assert "won't be shown again" in result.err and "RUNFLOW_WEBHOOK_SECRET" in result.err

    as_json = cli("secrets", "create", "--label", "ci", "--json", *api(sb))
    document = json.loads(as_json.out)
    assert document["label"] == "ci" and document["secret"].startswith("rf_whsec_")
    assert document["id"]


@pytest.mark.parametrize(
    "command", [("run",), ("download",), ("cancel",), ("secrets",), ("secrets", "create")]
)
def test_help_has_an_example(command: tuple[str, ...], cli: Any) -> None:
    result = cli(*command, "--help")
    assert result.code == 0
    assert "Example:" in result.out


# --- units ----------------------------------------------------------------------


def test_wait_for_run_grows_its_interval_and_reports_each_status() -> None:
    statuses = iter(["queued", "running", "running", "running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "r1", "status": next(statuses)})

    slept: list[float] = []
    seen: list[str] = []
    client = RunflowClient("rf_test_x", "https://api.test", transport=httpx.MockTransport(handler))
    with client:
        run = wait_for_run(
            client,
            "r1",
            Polling(interval=1.0, max_interval=2.0),
            sleep=slept.append,
            on_status=lambda _, status: seen.append(status),
        )
    assert run.status == "succeeded"
    assert slept == [1.0, 1.5, 2.0, 2.0, 2.0]  # one wait before each GET
    assert seen == ["queued", "running", "running", "running", "succeeded"]


def test_prepare_run_and_metadata() -> None:
    request = prepare_run(f"{CDN}/a/Shirt%20Blue.jpg", "Background-Removal, tag removal")
    assert request.item.sku == request.item.name == "Shirt Blue"
    assert request.item.elements == ("tag_removal", "background_removal")
    assert request.item.api_input()["client_ref"] == "Shirt Blue"
    assert parse_metadata(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UsageError, match="twice"):
        parse_metadata(["a=1", "a=2"])
    with pytest.raises(UsageError, match="callback-url"):
        prepare_run(f"{CDN}/a.jpg", "tag_removal", callback_url="ftp://x")
