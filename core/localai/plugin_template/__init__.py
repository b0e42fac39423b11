"""``localai plugin new NAME``: write a backend plugin package from the files next to this module.

Templates are ``string.Template`` files (``${name}``, ``${package}``, ``${cls}``, ...); ``package/`` becomes
the plugin's import package ``localai_<name>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from localai import __version__

FILES = Path(__file__).parent / "files"
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def names(name: str) -> dict[str, str]:
    """The spellings a backend called ``name`` uses: distribution, package, class."""
    name = name.strip().lower().replace("_", "-")
    name = name.removeprefix("localai-")
    if not NAME_RE.match(name):
        raise ValueError(f"backend name {name!r}: use lowercase letters, digits and single hyphens, starting with a letter "
                         "(e.g. my-engine)")
    package = "localai_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-")) + "Model"
    return {"name": name, "package": package, "cls": cls, "aliases": "", "core_version": __version__}


def new_plugin(name: str, dest: Path | None = None) -> tuple[Path, list[Path]]:
    """Write the package into ``dest`` (default ``./<name>``), which must not exist or be empty."""
    values = names(name)
    dest = Path(dest if dest is not None else values["name"])
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} already exists and is not an empty folder; choose another --dir")
    values["dirname"] = dest.name
    written: list[Path] = []
    for source in sorted(FILES.rglob("*.tmpl")):
        relative = source.relative_to(FILES).with_suffix("")  # drop .tmpl
        parts = [values["package"] if p == "package" else p for p in relative.parts]
        target = dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(source.read_text()).substitute(values))
        written.append(target)
    return dest, written
