#!/usr/bin/env python3
"""Generate control/src/apiserver/merge_keys.rs from the k8s-openapi registry source.

k8s-openapi's schemars output lacks the list-merge extensions Kubernetes publishes
(x-kubernetes-patch-merge-key, -patch-strategy, -list-type, -list-map-keys), but its
generated `DeepMerge` impls encode the same information:

    crate::merge_strategies::list::map(&mut self.containers, .., &[|lhs, rhs| lhs.name == rhs.name], ..)
        -> merge by key "name"
    crate::merge_strategies::list::set(..)     -> a set of scalars
    crate::merge_strategies::list::atomic(..)  -> replaced as a whole

Rust field names are mapped to JSON names through each type's `Deserialize` impl
("containerPort" => Field::Key_container_port). The schema name comes from the
`JsonSchema::schema_name` impl ("io.k8s.api.core.v1.PodSpec").

Usage:  tools/gen-merge-keys.py [K8S_OPENAPI_SRC_DIR] > control/src/apiserver/merge_keys.rs
        (default: the newest ~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33)
The output is deterministic (sorted), so re-running it on the same source is a no-op.
"""

import glob
import os
import re
import sys

VERSION = "0.29.0"
API = "v1_33"

# `retainKeys` is not visible in DeepMerge. These are the fields Kubernetes' own types
# tag with patchStrategy "retainKeys" (k8s.io/api, v1.33): (schema, json field) -> strategy.
RETAIN_KEYS = {
    ("io.k8s.api.core.v1.PodSpec", "volumes"): "merge,retainKeys",
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims"): "merge,retainKeys",
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"): "retainKeys",
}

RE_STRUCT = re.compile(r"^pub struct (\w+)\s*\{", re.M)
RE_FIELD_DECL = re.compile(r"^\s*pub (\w+): (.+),\s*$", re.M)
RE_SCHEMA_NAME = re.compile(r"fn schema_name\(\)[^{]*\{\s*\"([^\"]+)\"\.into\(\)")
RE_JSON_NAME = re.compile(r"\"([^\"]+)\" => Field::Key_(\w+),")
RE_DEEP_MERGE = re.compile(r"impl crate::DeepMerge for (\w+) \{(.*?)\n\}\n", re.S)
RE_LIST_CALL = re.compile(
    r"crate::merge_strategies::list::(map|set|atomic)\(\s*&mut self\.(\w+),\s*other\.\w+,?(.*?)\);",
    re.S,
)
RE_KEY_CLOSURE = re.compile(r"\|lhs, rhs\| lhs\.([\w.]+) == rhs\.([\w.]+)")
RE_CRATE_TYPE = re.compile(r"crate::((?:\w+::)*)(\w+)")


def default_src():
    pattern = os.path.expanduser(f"~/.cargo/registry/src/*/k8s-openapi-{VERSION}/src/{API}")
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit(f"k8s-openapi {VERSION} source not found at {pattern}")
    return found[-1]


def module_of(src, path):
    rel = os.path.relpath(os.path.dirname(path), src)
    return "" if rel == "." else rel.replace(os.sep, "::")


def parse(src):
    """Returns {(module, TypeName): info} for every generated struct."""
    types = {}
    for path in sorted(glob.glob(os.path.join(src, "**", "*.rs"), recursive=True)):
        base = os.path.basename(path)
        if base in ("mod.rs", "list.rs"):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        m = RE_STRUCT.search(text)
        if not m:
            continue
        name = m.group(1)
        body_end = text.find("\n}\n", m.end())
        fields = {}
        for fm in RE_FIELD_DECL.finditer(text[m.end():body_end]):
            fields[fm.group(1)] = fm.group(2)
        schema = RE_SCHEMA_NAME.search(text)
        json_names = {rust: js for js, rust in RE_JSON_NAME.findall(text)}
        lists = []
        dm = RE_DEEP_MERGE.search(text)
        if dm and dm.group(1) == name:
            for kind, field, rest in RE_LIST_CALL.findall(dm.group(2)):
                keys = [l for l, r in RE_KEY_CLOSURE.findall(rest)] if kind == "map" else []
                lists.append((kind, field, keys))
        types[(module_of(src, path), name)] = {
            "schema": schema.group(1) if schema else None,
            "fields": fields,
            "json": json_names,
            "lists": lists,
            "path": path,
        }
    return types


def item_type(types, decl):
    """The (module, name) of the element type of a `Vec<crate::...::T>` declaration."""
    inner = decl
    m = re.search(r"Vec<(.+)>", decl)
    if m:
        inner = m.group(1)
    m = RE_CRATE_TYPE.search(inner)
    if not m:
        return None
    key = (m.group(1).rstrip(":"), m.group(2))
    return key if key in types else None


def build(types):
    rows = {}
    problems = []
    for (module, name), info in types.items():
        schema = info["schema"]
        if schema is None:
            continue
        for kind, field, keys in info["lists"]:
            json_field = info["json"].get(field)
            if json_field is None:
                problems.append(f"{schema}: no JSON name for field {field}")
                continue
            if kind == "map":
                item = item_type(types, info["fields"].get(field, ""))
                if item is None:
                    problems.append(f"{schema}.{json_field}: element type not found")
                    continue
                item_json = types[item]["json"]
                if any("." in k for k in keys):
                    # A nested key (StatefulSetSpec.volumeClaimTemplates by metadata.name) is a
                    # k8s-openapi refinement; Kubernetes lists it as atomic.
                    rows[(schema, json_field)] = ("Atomic", [])
                    continue
                json_keys = []
                for k in keys:
                    if k not in item_json:
                        problems.append(f"{schema}.{json_field}: key {k} not a field of {item[1]}")
                        break
                    json_keys.append(item_json[k])
                else:
                    rows[(schema, json_field)] = ("Map", json_keys)
            elif kind == "set":
                rows[(schema, json_field)] = ("Set", [])
            else:
                rows[(schema, json_field)] = ("Atomic", [])
    return rows, problems


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def emit(rows):
    out = []
    out.append("//! Generated by tools/gen-merge-keys.py from k8s-openapi "
               f"{VERSION} ({API}) — do not edit by hand.")
    out.append("//!")
    out.append("//! How each list-typed field of the built-in kinds merges, keyed by")
    out.append("//! (OpenAPI schema name, JSON field name), plus the fields Kubernetes tags with")
    out.append("//! patch strategy `retainKeys`. Sorted by key, so lookups binary-search.")
    out.append("")
    out.append("/// How a field merges.")
    out.append("#[derive(Clone, Copy, Debug, PartialEq, Eq)]")
    out.append("pub(crate) enum Merge {")
    out.append("    /// Replaced as a whole (`x-kubernetes-list-type: atomic`).")
    out.append("    Atomic,")
    out.append("    /// Merged item by item, identified by these keys; the first is the patch merge key.")
    out.append("    Map(&'static [&'static str]),")
    out.append("    /// A set of scalars.")
    out.append("    Set,")
    out.append("    /// Not a list: only carries a patch strategy (e.g. `retainKeys`).")
    out.append("    Object,")
    out.append("}")
    out.append("")
    out.append("/// One row of [`MERGE_KEYS`].")
    out.append("#[derive(Debug)]")
    out.append("pub(crate) struct MergeKey {")
    out.append("    pub schema: &'static str,")
    out.append("    pub field: &'static str,")
    out.append("    pub merge: Merge,")
    out.append("    /// The patch strategy includes `retainKeys`.")
    out.append("    pub retain_keys: bool,")
    out.append("}")
    out.append("")
    out.append("/// Looks up the row for `field` of schema `schema`.")
    out.append("pub(crate) fn lookup(schema: &str, field: &str) -> Option<&'static MergeKey> {")
    out.append("    MERGE_KEYS")
    out.append("        .binary_search_by(|row| (row.schema, row.field).cmp(&(schema, field)))")
    out.append("        .ok()")
    out.append("        .map(|i| &MERGE_KEYS[i])")
    out.append("}")
    out.append("")
    out.append("/// Every row, sorted by (schema, field).")
    out.append("pub(crate) static MERGE_KEYS: &[MergeKey] = &[")
    for (schema, field) in sorted(rows):
        kind, keys = rows[(schema, field)]
        retain = (schema, field) in RETAIN_KEYS
        if kind == "Map":
            merge = "Merge::Map(&[" + ", ".join(rust_str(k) for k in keys) + "])"
        else:
            merge = "Merge::" + kind
        out.append(f"    MergeKey {{ schema: {rust_str(schema)}, field: {rust_str(field)}, "
                   f"merge: {merge}, retain_keys: {'true' if retain else 'false'} }},")
    out.append("];")
    out.append("")
    return "\n".join(out)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else default_src()
    types = parse(src)
    rows, problems = build(types)
    for (schema, field), strategy in RETAIN_KEYS.items():
        if (schema, field) not in rows:
            rows[(schema, field)] = ("Object", [])
        elif "merge" in strategy and rows[(schema, field)][0] != "Map":
            problems.append(f"{schema}.{field}: retainKeys merge list is not a map list")
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    # Python's sort of str tuples is by code point, the same order as Rust's `str::cmp`.
    sys.stdout.write(emit(rows))


if __name__ == "__main__":
    main()
