#!/usr/bin/env python3
"""Sanity-check the synthetic eval set: JSON parses, header fields, gold ids exist, counts."""
import json, os, re, sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
KB = os.environ.get("KB_DIR", "/work/shared/kb")
SETS = [("bank-zh", "qinghe-bank", "zh"), ("shop-en", "northwind-shop", "en")]
KINDS = {"paraphrase", "colloquial", "typo", "long-context", "keyword-only", "out-of-scope"}

def kb_ids(name):
    text = open(os.path.join(KB, name + ".yaml"), encoding="utf-8").read()
    return re.findall(r'^\s*- id:\s*"([^"]+)"', text, re.M)

errors = 0
def err(msg):
    global errors
    errors += 1
    print("ERROR:", msg)

for name, tenant, lang in SETS:
    ids = kb_ids(name)
    idset = set(ids)
    print(f"== {name}: KB has {len(ids)} entries")
    for suffix, key in (("queries", "queries"), ("followups", "followups")):
        path = os.path.join(HERE, f"{name}-{suffix}.json")
        d = json.load(open(path, encoding="utf-8"))
        if (d.get("tenant"), d.get("language"), d.get("version")) != (tenant, lang, 1):
            err(f"{path}: bad header {d.get('tenant')},{d.get('language')},{d.get('version')}")
        items = d[key]
        seen = Counter()
        if key == "queries":
            kinds, golds = Counter(), Counter()
            for q in items:
                seen[q["query"]] += 1
                if q["kind"] not in KINDS:
                    err(f"{name}: unknown kind {q['kind']!r}")
                kinds[q["kind"]] += 1
                if q["kind"] == "out-of-scope":
                    if q["gold"] is not None:
                        err(f"{name}: out-of-scope with gold {q['gold']}")
                elif q["gold"] not in idset:
                    err(f"{name}: unknown gold {q['gold']!r} for {q['query']!r}")
                else:
                    golds[q["gold"]] += 1
            print(f"  queries: {len(items)} total; by kind: " +
                  ", ".join(f"{k}={kinds[k]}" for k in sorted(kinds)))
            print(f"  distinct gold ids: {len(golds)}/{len(ids)}; not covered: "
                  f"{[i for i in ids if i not in golds]}")
        else:
            golds, same = set(), 0
            for f in items:
                seen[f["first"] + "|" + f["then"]] += 1
                for k in ("first_gold", "gold"):
                    if f[k] not in idset:
                        err(f"{name}: unknown {k} {f[k]!r}")
                golds.add(f["gold"])
                same += f["gold"] == f["first_gold"]
            print(f"  followups: {len(items)} pairs; distinct gold ids: {len(golds)}; "
                  f"gold==first_gold: {same}")
        dups = [q for q, n in seen.items() if n > 1]
        if dups:
            err(f"{path}: duplicates {dups}")

print("OK" if errors == 0 else f"{errors} error(s)")
sys.exit(1 if errors else 0)
