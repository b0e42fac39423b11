"""LocalAI-compatible model configs: the YAML schema and loading a models folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from localai.types import JsonLimits, MinP, Penalty, RepeatPenalty, Temperature, TopK, TopP

log = logging.getLogger("localai.config")

_warned_unknown: set[tuple[str, str]] = set()


class Parameters(BaseModel):
    """LocalAI's ``parameters:`` block: the model file and default sampling settings."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: TopK | None = None
    min_p: MinP | None = None
    max_tokens: int | None = None
    seed: int | None = None
    repeat_penalty: RepeatPenalty | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    ignore_eos: bool | None = None  # keep generating past end tokens, to max_tokens or a stop string


class TemplateConfig(BaseModel):
    """Prompt templates (Jinja2). ``use_tokenizer_template`` prefers the model file's own template."""

    model_config = ConfigDict(extra="allow")

    chat: str | None = None
    chat_message: str | None = None
    completion: str | None = None
    function: str | None = None
    use_tokenizer_template: bool = False


# LocalAI's diffusers scheduler names (``k_`` = the same scheduler with Karras sigmas) and the pipeline classes
# the diffusers backend builds. Checked here, at config load, so a typo shows in ``localai models`` at once.
SCHEDULER_TYPES = ("ddim", "pndm", "heun", "unipc", "euler", "euler_a", "lms", "dpm_2", "dpm_2_a", "dpmpp_2m",
                   "dpmpp_sde", "dpmpp_2m_sde")
KARRAS_SCHEDULER_TYPES = tuple(f"k_{n}" for n in ("heun", "unipc", "euler", "dpm_2", "dpm_2_a", "dpmpp_2m", "dpmpp_2m_sde"))
PIPELINE_TYPES = ("AutoPipelineForText2Image", "AutoPipelineForImage2Image", "DiffusionPipeline",
                  "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionXLPipeline",
                  "StableDiffusionXLImg2ImgPipeline", "StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline",
                  "FluxPipeline", "FluxImg2ImgPipeline", "PixArtSigmaPipeline", "SanaPipeline")


class DiffusersConfig(BaseModel):
    """LocalAI's ``diffusers:`` block for image models. Unknown keys are kept and warned about."""

    model_config = ConfigDict(extra="allow")

    pipeline_type: str | None = None
    scheduler_type: str | None = None
    cuda: bool = False
    cfg_scale: float | None = Field(default=None, ge=0)
    clip_skip: int = Field(default=0, ge=0)
    img2img: bool = False

    @field_validator("pipeline_type")
    @classmethod
    def _known_pipeline(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if v not in PIPELINE_TYPES:
            raise ValueError(f"unknown pipeline_type {v!r}; accepted: {', '.join(PIPELINE_TYPES)}")
        return v

    @field_validator("scheduler_type")
    @classmethod
    def _known_scheduler(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        name = v.strip().lower()
        if name not in SCHEDULER_TYPES + KARRAS_SCHEDULER_TYPES:
            raise ValueError(f"unknown scheduler_type {v!r}; accepted: {', '.join(SCHEDULER_TYPES + KARRAS_SCHEDULER_TYPES)}")
        return name


class ModelConfig(BaseModel):
    """One model as a LocalAI YAML describes it. Unknown keys are kept (and warned about once)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    backend: str | None = None
    description: str | None = None
    parameters: Parameters = Field(default_factory=Parameters)
    context_size: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)
    f16: bool | None = None
    mmap: bool | None = None
    mmlock: bool | None = None
    gpu_layers: int | None = None
    embeddings: bool = False
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    stopwords: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list)
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    flash_attention: bool | str | None = None
    main_gpu: str | int | None = None
    mmproj: str | None = None
    # LocalAI's prompt cache file (relative to the models folder): a prompt's KV state kept on disk across restarts;
    # prompt_cache_all keeps the generated tokens too, prompt_cache_ro only reads it. Backends with "prompt_cache".
    prompt_cache_path: str | None = None
    prompt_cache_all: bool = False
    prompt_cache_ro: bool = False
    type: str | None = None
    quantization: str | None = None  # transformers: bnb_4bit / bnb_8bit (CUDA)
    trust_remote_code: bool | None = None  # transformers: run a model folder's own code
    system_prompt: str | None = None
    roles: dict[str, str] = Field(default_factory=dict)
    known_usecases: list[str] = Field(default_factory=list)
    # A base (pretrained) model continues text; unset, the GGUF header decides (localai.registry.model_kind).
    base_model: bool | None = None
    function: dict[str, Any] | None = None
    tool_parser: str | None = None
    # How JSON answers (response_format, forced tool calls) may be written where the schema is silent: digits of
    # numbers, whitespace, string length (localai.constraints.limits); a request's json_limits goes over this.
    json_limits: JsonLimits | None = None
    # Lifecycle (localai.runtime.lifecycle): Ollama's keep_alive ("5m", 300, 0 = unload after each request,
    # negative = never), never evicted when pinned, loaded at start-up when preload.
    keep_alive: str | int | float | None = None
    pinned: bool = False
    preload: bool = False
    diffusers: DiffusersConfig = Field(default_factory=DiffusersConfig)  # image models (LocalAI's block)
    step: int | None = Field(default=None, ge=1)  # image models: default denoising steps
    low_vram: bool | None = None  # image models: offload weights to CPU between uses (CUDA)

    @field_validator("options", "stopwords", "known_usecases", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(x) if isinstance(x, (int, float, bool)) else x for x in v]
        return v

    @field_validator("keep_alive")
    @classmethod
    def _keep_alive_is_a_duration(cls, v: Any) -> Any:
        if v is not None:
            from localai.durations import parse_duration

            parse_duration(v)
        return v

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class ConfigProblem(BaseModel):
    file: str
    model: str | None = None
    field: str | None = None
    message: str

    def __str__(self) -> str:
        where = self.file + (f" (model {self.model!r})" if self.model else "")
        what = f"field {self.field!r}: " if self.field else ""
        return f"{where}: {what}{self.message}"


def resolve_model_file(models_path: Path, relative: str) -> Path:
    """``relative`` inside ``models_path``; absolute paths and ``..`` escapes are refused."""
    p = Path(relative)
    if p.is_absolute():
        raise ValueError(f"absolute path {relative!r} is not allowed; give a path relative to the models folder")
    if ".." in p.parts:
        raise ValueError(f"path {relative!r} leaves the models folder ('..' is not allowed)")
    # Symlinks the user placed in the folder are fine: only the YAML's own path must stay inside.
    return models_path.absolute() / p


def require_model_file(config: ModelConfig, model_path: str | None) -> str:
    """The single-file model ``load_model`` was given, or a clear error naming the model (for file-based backends)."""
    if not model_path:
        raise ValueError(f"model {config.name!r} has no parameters.model (the file to load)")
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"model file {model_path} does not exist")
    return model_path


def _problems_from_validation(file: str, model: str | None, exc: ValidationError) -> list[ConfigProblem]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or None
        out.append(ConfigProblem(file=file, model=model, field=loc, message=err["msg"]))
    return out


def warn_unknown_keys(file: str, cfg: ModelConfig, known: tuple[str, ...] = ()) -> None:
    """Warn once per file and key about YAML keys nothing reads; ``known``: the backend's own fields."""
    extras = [k for k in (cfg.model_extra or {}) if k not in known]
    extras += [f"diffusers.{k}" for k in (cfg.diffusers.model_extra or {})]
    for key in extras:
        if (file, key) not in _warned_unknown:
            _warned_unknown.add((file, key))
            log.warning("%s: model %r: unknown key %r kept but not used", file, cfg.name, key)


def parse_yaml_file(path: Path) -> tuple[list[ModelConfig], list[ConfigProblem]]:
    """Configs in one YAML file (a mapping or a list of mappings) and the problems found."""
    fname = path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [ConfigProblem(file=fname, message=f"YAML syntax error{where}: {problem}")]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ConfigProblem(file=fname, message=f"cannot read: {exc}")]
    if data is None:
        return [], [ConfigProblem(file=fname, message="file is empty")]
    items = data if isinstance(data, list) else [data]
    configs: list[ConfigProblem | ModelConfig] = []
    problems: list[ConfigProblem] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(ConfigProblem(file=fname, message=f"entry {i + 1} is a {type(item).__name__}, expected a mapping"))
            continue
        name = item.get("name") if isinstance(item.get("name"), str) else None
        try:
            cfg = ModelConfig.model_validate(item)
        except ValidationError as exc:
            problems.extend(_problems_from_validation(fname, name, exc))
            continue
        configs.append(cfg)
    return configs, problems  # type: ignore[return-value]


def load_folder(models_path: Path) -> tuple[list[tuple[ModelConfig, str]], list[ConfigProblem]]:
    """Every config under ``models_path`` (with its file name) plus bare ``.gguf`` files.

    A ``.gguf`` that no YAML's ``parameters.model`` names is served under its file name
    without the extension, as LocalAI does.
    """
    found: list[tuple[ModelConfig, str]] = []
    problems: list[ConfigProblem] = []
    if not models_path.is_dir():
        return found, [ConfigProblem(file=str(models_path), message="models folder does not exist")]
    for path in sorted(models_path.iterdir()):
        # Hidden files are not configs (LocalAI's ._gallery_<name>.yaml records, editor and macOS "._" files).
        if path.suffix.lower() in (".yaml", ".yml") and path.is_file() and not path.name.startswith("."):
            cfgs, probs = parse_yaml_file(path)
            found.extend((c, path.name) for c in cfgs)
            problems.extend(probs)
    referenced = set()
    for cfg, _ in found:
        if cfg.parameters.model:
            try:
                referenced.add(resolve_model_file(models_path, cfg.parameters.model))
            except ValueError:
                pass
    names = {cfg.name for cfg, _ in found}
    for path in sorted(models_path.glob("*.gguf")):
        if path.absolute() in referenced or path.stem in names or "mmproj" in path.stem.lower():
            continue
        found.append((ModelConfig(name=path.stem, parameters=Parameters(model=path.name)), path.name))
    return found, problems
