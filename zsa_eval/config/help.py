"""`zsa-eval --help`'s key tables, generated from the config files themselves (each key's default and the comment
beside it): the `zsa_eval_keys` resolver conf/hydra/help/zsa_eval.yaml calls."""

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from zsa_eval.config.checks import shown
from zsa_eval.entry_points import families_line
from zsa_eval.config.schema import CONFIG_DIR, GROUPS


def meanings(config_file: Path) -> dict[str, str]:
    """The comment beside each key of a config file, or on the line above it (dotted paths for nested keys):
    its one-line meaning."""
    found: dict[str, str] = {}
    parents: list[str] = []
    above = ""
    if not config_file.is_file():
        return found
    for line in config_file.read_text(encoding="utf-8").splitlines():
        match = re.match(r"(?P<indent> *)(?P<key>\w+):(?P<rest>.*)$", line)
        if match:
            parents = parents[:len(match["indent"]) // 2] + [match["key"]]
            beside = re.search(r"(?:^|\s)#\s?(.*)$", match["rest"])
            if beside or above:
                found[".".join(parents)] = beside[1].strip() if beside else above
        above = line.strip().lstrip("#").strip() if line.strip().startswith("#") else ""
    return found


def key_lines(values: dict, meaning: dict[str, str], prefix: str = "") -> list[str]:
    """`  key=default   meaning` for every (nested) key, the default as written in the config."""
    lines = []
    for name, value in values.items():
        if isinstance(value, dict) and value:
            if prefix + name in meaning:
                lines.append(f"  {prefix}{name}.*{'':<{max(1, 30 - len(prefix + name))}}{meaning[prefix + name]}")
            lines += key_lines(value, meaning, f"{prefix}{name}.")
            continue
        setting = f"  {prefix}{name}={shown(value)}"
        explanation = meaning.get(prefix + name, "")
        lines.append(f"{setting:<34}{explanation}".rstrip() if len(setting) < 34 or not explanation
                     else f"{setting}\n{'':<34}{explanation}")
    return lines


def help_keys(_root_: DictConfig) -> str:
    """The key tables of `--help`: top-level keys from conf/config.yaml, then those of the chosen group options."""
    values = OmegaConf.to_container(_root_, resolve=False)
    choices = values["hydra"]["runtime"]["choices"]
    sections = key_lines({name: values[name] for name in values if name not in (*GROUPS, "hydra")},
                         meanings(Path(CONFIG_DIR) / "config.yaml"))
    for group in GROUPS:
        group_values = {name: value if name != "references" else f"{len(value or [])} published figures"
                        for name, value in values[group].items() if name != "_target_"}
        sections += ["", f"{group}={choices[group]}, its keys (conf/{group}/{choices[group]}.yaml):"]
        group_meanings = meanings(Path(CONFIG_DIR) / group / f"{choices[group]}.yaml")
        sections += key_lines({group: group_values}, {f"{group}.{name}": text for name, text in group_meanings.items()})
    return "\n".join(sections).replace("$", "$$")  # the help template is a string.Template


OmegaConf.register_new_resolver("zsa_eval_keys", help_keys, replace=True)
OmegaConf.register_new_resolver("zsa_eval_families", families_line, replace=True)
