"""The ik_llama.cpp C functions this plugin needs beyond what ``ik_llama_cpp._ctypes_api`` binds.

The wheel's Python class has no streaming, seeds, penalties or min-p and samples in a Python loop,
but its ``libllama`` exports the classic ``llama_sample_*`` API; we bind the missing pieces here.
Importing this module loads the engine's shared library: worker processes only.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

from ik_llama_cpp import _ctypes_api as C

log = logging.getLogger("localai_ik_llama")

lib = C._lib
token_data_p = ctypes.POINTER(C.llama_token_data_array)


def _bind(name: str, argtypes: list[Any], restype: Any) -> Any:
    func = getattr(lib, name)
    func.argtypes = argtypes
    func.restype = restype
    return func


vp, i32, u32, f32, sz = ctypes.c_void_p, ctypes.c_int32, ctypes.c_uint32, ctypes.c_float, ctypes.c_size_t

set_rng_seed = _bind("llama_set_rng_seed", [vp, u32], None)
sample_repetition_penalties = _bind("llama_sample_repetition_penalties",
                                    [vp, token_data_p, ctypes.POINTER(C.llama_token), sz, f32, f32, f32], None)
sample_top_k = _bind("llama_sample_top_k", [vp, token_data_p, i32, sz], None)
sample_top_p = _bind("llama_sample_top_p", [vp, token_data_p, f32, sz], None)
sample_min_p = _bind("llama_sample_min_p", [vp, token_data_p, f32, sz], None)
sample_temp = _bind("llama_sample_temp", [vp, token_data_p, f32], None)
sample_token = _bind("llama_sample_token", [vp, token_data_p], C.llama_token)
sample_token_greedy = _bind("llama_sample_token_greedy", [vp, token_data_p], C.llama_token)
meta_val_str = _bind("llama_model_meta_val_str", [vp, ctypes.c_char_p, ctypes.c_char_p, sz], i32)
model_chat_template = _bind("llama_model_chat_template", [vp, ctypes.c_char_p], ctypes.c_char_p)
token_bos = _bind("llama_token_bos", [vp], C.llama_token)
token_eos = _bind("llama_token_eos", [vp], C.llama_token)
token_is_eog = _bind("llama_token_is_eog", [vp, C.llama_token], ctypes.c_bool)
n_vocab = _bind("llama_n_vocab", [vp], i32)
n_ctx = _bind("llama_n_ctx", [vp], u32)
n_batch = _bind("llama_n_batch", [vp], u32)
n_ubatch = _bind("llama_n_ubatch", [vp], u32)
n_ctx_train = _bind("llama_n_ctx_train", [vp], i32)
n_embd = _bind("llama_model_n_embd", [vp], i32)
kv_cache_seq_rm = _bind("llama_kv_cache_seq_rm", [vp, i32, i32, i32], ctypes.c_bool)
kv_cache_clear = _bind("llama_kv_cache_clear", [vp], None)
tokenize = _bind("llama_tokenize", [vp, ctypes.c_char_p, i32, ctypes.POINTER(C.llama_token), i32, ctypes.c_bool, ctypes.c_bool], i32)
token_to_piece = _bind("llama_token_to_piece", [vp, C.llama_token, ctypes.c_char_p, i32, i32, ctypes.c_bool], i32)
get_logits_ith = _bind("llama_get_logits_ith", [vp, i32], ctypes.POINTER(ctypes.c_float))
get_embeddings_seq = _bind("llama_get_embeddings_seq", [vp, i32], ctypes.POINTER(ctypes.c_float))
decode = _bind("llama_decode", [vp, C.llama_batch], i32)
model_get_vocab = _bind("llama_model_get_vocab", [vp], vp)

LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_log_set = _bind("llama_log_set", [LOG_CALLBACK, vp], None)
_GGML_LOG_LEVEL_ERROR = 4


@LOG_CALLBACK
def _engine_log(level: int, text: bytes | None, _user: Any) -> None:
    """Engine chatter goes to the worker's logger (errors always, the rest only when verbose)."""
    if not text:
        return
    msg = text.decode("utf-8", "replace").rstrip()
    if not msg:
        return
    if level == _GGML_LOG_LEVEL_ERROR:
        log.error("ik_llama: %s", msg)
    elif os.environ.get("LOCALAI_ENGINE_VERBOSE", "") in ("1", "true"):
        log.info("ik_llama: %s", msg)


_backend_ready = False


def init_backend() -> None:
    """Route engine logs and initialise ggml once per process."""
    global _backend_ready
    if not _backend_ready:
        _log_set(_engine_log, None)
        C.llama_backend_init()
        _backend_ready = True


def meta(model: int, key: str) -> str | None:
    """A GGUF metadata value as a string (``None`` when absent); grows the buffer for long values."""
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = meta_val_str(model, key.encode(), buf, size)
        if n < 0:
            return None
        if n < size:
            return buf.value.decode("utf-8", "replace")
        size = n + 1


def piece(model: int, token: int, special: bool = False) -> bytes:
    """The bytes one token stands for (``special``: render control tokens as their text)."""
    buf = ctypes.create_string_buffer(64)
    n = token_to_piece(model, token, buf, 64, 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = token_to_piece(model, token, buf, -n, 0, special)
    return buf.raw[: max(n, 0)]


def tokens_of(model: int, text: str, add_special: bool, parse_special: bool = True) -> list[int]:
    data = text.encode("utf-8")
    cap = len(data) + 8
    buf = (C.llama_token * cap)()
    n = tokenize(model, data, len(data), buf, cap, add_special, parse_special)
    if n < 0:
        cap = -n
        buf = (C.llama_token * cap)()
        n = tokenize(model, data, len(data), buf, cap, add_special, parse_special)
    return list(buf[:n])
