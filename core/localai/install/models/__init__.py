"""The model gallery (LocalAI's index format): list galleries, install models by name, delete them.

Modules: ``sources`` (URI schemes), ``index`` (galleries and their entries), ``merge`` (entry -> model YAML),
``paths`` (what may be written), ``download`` (resumable, verified downloads), ``install`` (the jobs),
``routes`` (LocalAI's HTTP routes), ``cli`` (``localai models list/install``). Nothing is imported here so
that ``localai --help`` stays fast.
"""

# LocalAI's default model gallery (its ``DefaultGalleriesJSON``).
DEFAULT_GALLERIES = ('[{"name": "localai", "url": "https://index.localai.io/models", '
                     '"mirrors": ["github:mudler/LocalAI/gallery/index.yaml@master"]}]')
