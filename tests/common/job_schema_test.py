#!/usr/bin/python3
"""docs/job.schema.json against the shipped configs and the bad-config corpus, with Debian's
python3-jsonschema (an independent validator; run by /usr/bin/python3).

usage: job_schema_test.py SOURCE_DIR

- every job file in configs/ is valid; the seed's three files (data_config*, model_config*,
  train_config*) are valid against the schema's data / model / train section;
- every tests/common/bad_configs/*.yaml whose first line is "# schema: reject KEY" is rejected, and an
  error points at KEY (its JSON path: the key itself for an unknown key, else the value);
- "# schema: accept (...)" files (rules between keys, which only the loader checks) are accepted.
YAML is read as the loader reads it (YAML 1.2 core: only true/false are booleans, 1e-3 is a number).
"""
import glob
import json
import os
import re
import sys

import jsonschema
import yaml


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML is YAML 1.1 (yes/no/on/off are booleans, 1e-3 is a string); the loader is YAML 1.2."""


Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float",
                                                  "tag:yaml.org,2002:int")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."))


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=Yaml12Loader)


def error_paths(validator, doc):
    """Each error as a dotted path ('train.batch_sise', 'eval.datasets[0].dir')."""
    out = []
    for e in validator.iter_errors(doc):
        parts = list(e.absolute_path)
        if e.validator == "additionalProperties":
            extra = re.findall(r"'([^']+)' (?:was|were) unexpected", e.message)
            found = re.findall(r"'([^']+)'", e.message.split("(")[-1]) if not extra else []
            for k in (extra or found or ["?"]):
                out.append((parts + [k], e.message))
        else:
            out.append((parts, e.message))
    text = []
    for parts, msg in out:
        s = ""
        for p in parts:
            s += f"[{p}]" if isinstance(p, int) else (("." if s else "") + str(p))
        text.append((s, msg))
    return text


def main():
    src = sys.argv[1]
    with open(os.path.join(src, "docs/job.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    failures = []
    seed_sections = {"data_config": "data", "model_config": "model", "train_config": "train"}

    configs = sorted(glob.glob(os.path.join(src, "configs/*.yaml")))
    if not configs:
        failures.append("no configs/*.yaml found")
    for path in configs:
        name = os.path.basename(path)
        section = next((s for p, s in seed_sections.items() if name.startswith(p)), None)
        sub = schema["properties"][section] if section else schema
        errs = error_paths(jsonschema.Draft7Validator(sub), load(path))
        what = f"the '{section}' section" if section else "the job schema"
        print(f"configs/{name}: {'valid' if not errs else 'INVALID'} against {what}")
        for p, m in errs:
            failures.append(f"configs/{name}: {p}: {m}")

    validator = jsonschema.Draft7Validator(schema)
    corpus = sorted(glob.glob(os.path.join(src, "tests/common/bad_configs/*.yaml")))
    if len(corpus) < 10:
        failures.append(f"only {len(corpus)} files in tests/common/bad_configs")
    for path in corpus:
        name = os.path.basename(path)
        with open(path) as f:
            head = f.readline()
        m = re.match(r"# schema: (reject (\S+)|accept\b)", head)
        if not m:
            failures.append(f"{name}: the first line must be '# schema: reject KEY' or '# schema: accept (...)'")
            continue
        errs = error_paths(validator, load(path))
        if m.group(2):
            key = m.group(2)
            hit = [p for p, _ in errs if p == key]
            print(f"bad_configs/{name}: {'rejected at ' + key if hit else 'NOT rejected at ' + key}"
                  f"{'' if hit else ': ' + repr(errs)}")
            if not hit:
                failures.append(f"bad_configs/{name}: the schema should reject {key}; its errors: {errs}")
        else:
            print(f"bad_configs/{name}: {'accepted (a rule between keys)' if not errs else 'REJECTED'}")
            if errs:
                failures.append(f"bad_configs/{name}: a rule between keys the schema cannot state, but it "
                                f"rejected: {errs}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
