"""``python -m localai.worker``: the worker entry point now lives in :mod:`localai.runtime.worker`."""

from localai.runtime.worker.__main__ import main

if __name__ == "__main__":
    main()
