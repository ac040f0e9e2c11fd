"""FastAPI routes speaking the Runflow contract, and its error envelope.

Auth, faults and rate limits happen one layer out (``faults.FaultGate``); by the
time a request gets here it is authenticated. Bodies are validated by hand from
the raw JSON so each item's ``input`` can be echoed back exactly as sent.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import ApiError, Engine, fingerprint
from .images import LOOPBACK_HOSTS
from .settings import MODEL

Element = Literal["model_removal", "tag_removal", "product_isolation", "background_removal"]
METADATA_LIMIT = 16 * 1024
STATUS_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 409: "CONFLICT"}


class ItemConfig(BaseModel):
    elements: list[Element] = Field(min_length=1)
    aspect_ratio: str | None = Field(default=None, pattern=r"^[1-9][0-9]*:[1-9][0-9]*$")
    product_isolation_prompt: str | None = None

    @field_validator("elements")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("elements must not repeat")
        return value


class Item(BaseModel):
    image_url: str
    config: ItemConfig
    client_ref: str | None = Field(default=None, max_length=255)

    @field_validator("image_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("image_url must be an http or https URL")
        return value


class BatchBody(BaseModel):
    input: list[Item] = Field(min_length=1)
    callback_url: str | None = None
    metadata: dict[str, Any] | None = None


class RunBody(BaseModel):
    input: Item
    callback_url: str | None = None
    metadata: dict[str, Any] | None = None


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


async def _parse(request: Request, model: type[BaseModel]) -> tuple[dict[str, Any], Any]:
    """(raw JSON, validated model), or RequestValidationError with ``body``-rooted locs."""
    try:
        raw = json.loads(await request.body())
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"JSON decode error: {exc}", "type": "json_invalid"}]
        ) from exc
    try:
        return raw, model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc


def _limits(body: BatchBody | RunBody, engine: Engine) -> None:
    """Checks that depend on live settings, with the same 422 shape as the schema's."""
    errors = []
    if isinstance(body, BatchBody) and len(body.input) > engine.settings.max_batch_items:
        cap = engine.settings.max_batch_items
        errors.append(("input", f"at most {cap} items per batch", "too_long"))
    if body.metadata is not None:
        size = len(json.dumps(body.metadata, separators=(",", ":")))
        if size > METADATA_LIMIT:
            errors.append(
                ("metadata", f"metadata is {size} bytes of JSON, limit 16384", "too_long")
            )
    if body.callback_url is not None:
        parts = urlsplit(body.callback_url)
        loopback_http = (
            parts.scheme == "http"
            and engine.settings.allow_http_callbacks
            and parts.hostname in LOOPBACK_HOSTS
        )
        if not ((parts.scheme == "https" and parts.hostname) or loopback_http):
            errors.append(("callback_url", "callback_url must be an https:// URL", "value_error"))
    if errors:
        raise RequestValidationError(
            [{"loc": ("body", field), "msg": msg, "type": kind} for field, msg, kind in errors]
        )


def create_app(engine: Engine) -> FastAPI:
    """The routes, bound to one engine."""
    app = FastAPI(title="Runflow sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return error_response(422, "VALIDATION_ERROR", "Request validation failed", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "ERROR")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "INTERNAL_ERROR", f"internal error: {type(exc).__name__}")

    async def _create(request: Request, owner: str, model: str, singleton: bool) -> dict[str, Any]:
        if f"{owner}/{model}" != MODEL:
            raise ApiError(404, "NOT_FOUND", f"model {owner}/{model} not found")
        raw, body = await _parse(request, RunBody if singleton else BatchBody)
        _limits(body, engine)
        return engine.create(
            [raw["input"]] if singleton else list(raw["input"]),
            singleton=singleton,
            callback_url=body.callback_url,
            metadata=body.metadata,
            idempotency_key=request.headers.get("idempotency-key"),
            request_fingerprint=fingerprint(request.url.path, raw),
        )

    @app.post("/v1/models/{owner}/{model}/batches")
    async def create_batch(request: Request, owner: str, model: str) -> dict[str, Any]:
        return await _create(request, owner, model, singleton=False)

    @app.post("/v1/models/{owner}/{model}/runs")
    async def create_run(request: Request, owner: str, model: str) -> dict[str, Any]:
        return await _create(request, owner, model, singleton=True)

    @app.get("/v1/batches/{batch_id}")
    async def get_batch(batch_id: str) -> dict[str, Any]:
        return engine.get_batch(batch_id)

    @app.get("/v1/runs/{run_id}")
    async def get_run(run_id: str) -> dict[str, Any]:
        return engine.get_run(run_id)

    @app.post("/v1/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str) -> dict[str, Any]:
        return engine.cancel_batch(batch_id)

    @app.post("/v1/runs/{run_id}/cancel")
    async def cancel_run(run_id: str) -> dict[str, Any]:
        return engine.cancel_run(run_id)

    @app.post("/v1/callback-secrets")
    async def create_secret(request: Request) -> dict[str, str]:
        raw, _ = await _parse(request, SecretBody)
        return engine.create_secret(raw["label"])

    @app.get("/files/{run_id}/{filename}")
    async def get_file(request: Request, run_id: str, filename: str) -> Response:
        # Like a CDN: the signature is checked before anything is looked up, and
        # refusals are plain text, not the API's envelope.
        refusal = engine.links.refusal(
            f"/files/{run_id}/{filename}",
            request.query_params.get("expires"),
            request.query_params.get("sig"),
        )
        if refusal is not None:
            return PlainTextResponse(refusal[1], status_code=refusal[0])
        path = engine.file_path(run_id, filename)
        if path is None:
            raise ApiError(404, "NOT_FOUND", f"file {run_id}/{filename} not found")
        return Response(path.read_bytes(), media_type="image/webp")

    return app


class SecretBody(BaseModel):
    label: str = Field(min_length=1, max_length=255)
