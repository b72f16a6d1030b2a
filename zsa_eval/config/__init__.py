"""The run config: its schema (zsa_eval.config.schema: every key's type and allowed values), its checks
(zsa_eval.config.checks: `checked(cfg)`, one line per mistake), `--help`'s key tables (zsa_eval.config.help) and
composing it (zsa_eval.config.overrides: output_dir's run_stamp, Hydra's errors in one line)."""

from zsa_eval.config.checks import checked, checked_references, invalid, schema_field_at, shown, unknown_key
from zsa_eval.config.help import meanings  # importing it registers --help's resolver
from zsa_eval.config.overrides import one_line  # ... and this, output_dir's run_stamp
from zsa_eval.config.schema import CONFIG_DIR, PROBE_CLASSIFIERS, RunConfig

__all__ = ["CONFIG_DIR", "PROBE_CLASSIFIERS", "RunConfig", "checked", "checked_references", "invalid", "meanings",
           "one_line", "schema_field_at", "shown", "unknown_key"]
