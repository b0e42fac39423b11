"""What routes receive through FastAPI's dependency injection: the engine (one per server, built at start-up)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from localai.engine import Engine


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.localai.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]
