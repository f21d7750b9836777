#!/usr/bin/python3
"""A real sparse text corpus built offline: Debian's package descriptions.

Reads `apt-cache dumpavail` (the package lists this machine already has; no
network), keeps one record per package name, and labels each package with its
Section (without the area prefix: "contrib/net" is "net"), keeping the 20 most
common sections. Features are the terms of a package's record: the words of
its (short) Description, lower-cased runs of letters and digits, and their
bigrams; the parts of its name split at "-", "." and "+"; its Source; the
package names in Depends, Recommends, Suggests and Provides; its Maintainer's
address. (Tag is left out: its facets restate the section.) Terms are
weighted as log(1 + count) * idf over the training rows, each row scaled to
unit L2 norm; the vocabulary is every term of the training rows.
Rows go to the test file when a hash of the package name says so (20 %), so
the split does not depend on the order apt lists packages in.

    /usr/bin/python3 scripts/make-debian-corpus.py OUT_DIR
writes OUT_DIR/debian-train.svm, OUT_DIR/debian-test.svm (libsvm format;
labels are class ids 0..19, the sections in alphabetical order, because
liblinear reads numeric labels only) and OUT_DIR/debian-sections.txt (the
section of each id, one a line), and prints their sizes. The result depends on the
package lists installed (apt-get update changes it); the figures in
docs/performance.md name the counts they were made from.
"""
import collections
import hashlib
import math
import os
import re
import subprocess
import sys

SECTIONS = 20
TEST_PERCENT = 20
MIN_DOCUMENTS = 1
WORD = re.compile(r"[a-z0-9]+")


def records(text):
    record, key = {}, None
    for line in text.splitlines():
        if not line.strip():
            if record:
                yield record
            record, key = {}, None
        elif line[0] in " \t" and key:
            record[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            record[key] = value.strip()
    if record:
        yield record


def terms(name, record):
    words = WORD.findall(record["Description"].lower())
    found = words + [f"{a}_{b}" for a, b in zip(words, words[1:])]
    found += ["name:" + part for part in re.split(r"[-.+]", name) if part]
    found.append("source:" + record.get("Source", name).split()[0])
    for field in ("Depends", "Recommends", "Suggests", "Provides"):
        for alternative in re.split(r"[,|]", record.get(field, "")):
            package = alternative.strip().split(" ")[0].split(":")[0]
            if package:
                found.append(field.lower() + ":" + package)
    maintainer = re.search(r"<([^>]*)>", record.get("Maintainer", ""))
    if maintainer:
        found.append("maintainer:" + maintainer.group(1).lower())
    return collections.Counter(found)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-debian-corpus.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    text = subprocess.run(["apt-cache", "dumpavail"], check=True, capture_output=True, text=True).stdout
    packages = {}
    for r in records(text):
        name, section, description = r.get("Package"), r.get("Section"), r.get("Description")
        if name and section and description and name not in packages:
            packages[name] = (section.split("/")[-1], terms(name, r))
    counts = collections.Counter(section for section, _ in packages.values())
    keep = {section for section, _ in counts.most_common(SECTIONS)}
    rows = []  # (test?, section, word counts)
    for name in sorted(packages):
        section, words = packages[name]
        if section not in keep:
            continue
        test = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 100 < TEST_PERCENT
        rows.append((test, section, words))
    train = [r for r in rows if not r[0]]
    df = collections.Counter(word for _, _, words in train for word in words)
    vocabulary = sorted(word for word, n in df.items() if n >= MIN_DOCUMENTS)
    index = {word: i + 1 for i, word in enumerate(vocabulary)}
    idf = {word: math.log(len(train) / df[word]) + 1 for word in vocabulary}
    class_id = {section: i for i, section in enumerate(sorted(keep))}
    with open(os.path.join(out, "debian-sections.txt"), "w") as f:
        f.write("".join(section + "\n" for section in sorted(keep)))
    for part, wanted in (("train", False), ("test", True)):
        path = os.path.join(out, f"debian-{part}.svm")
        n = nnz = 0
        with open(path, "w") as f:
            for test, section, words in rows:
                if test != wanted:
                    continue
                pairs = sorted((index[w], math.log1p(c) * idf[w]) for w, c in words.items() if w in index)
                norm = math.sqrt(sum(v * v for _, v in pairs)) or 1.0
                f.write(str(class_id[section]) + "".join(f" {i}:{v / norm:.6g}" for i, v in pairs) + "\n")
                n += 1
                nnz += len(pairs)
        print(f"{path}: {n} rows, {nnz} non-zeros")
    print(f"{len(vocabulary)} features, {len(keep)} classes: {', '.join(sorted(keep))}")


if __name__ == "__main__":
    main()
