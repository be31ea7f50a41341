#!/usr/bin/env python3
"""Regenerate the lexicon TSV files in this folder from the upstream packages.

Usage (from this folder):
    pip download --no-deps -d /tmp/lex vaderSentiment==3.3.2 vaderSentiment-fr==1.3.4 textblob-fr==0.2.0
    # unpack the two wheels and the sdist under /tmp/lex/x/, then:
    python3 make_data.py /tmp/lex/x

Nothing here reads any labeled evaluation data: every number comes from the
upstream lexicons, unchanged except for the documented format conversion.
"""
import collections
import re
import sys
from pathlib import Path

root = Path(sys.argv[1])
here = Path(__file__).resolve().parent


def fmt(v):
    return f"{v:.2f}".rstrip("0").rstrip(".")


# English VADER: token<TAB>mean<TAB>std<TAB>ratings -> token<TAB>mean
vader = {}
for line in open(root / "vaderSentiment/vaderSentiment/vader_lexicon.txt", encoding="utf-8"):
    parts = line.rstrip("\n").split("\t")
    if len(parts) >= 2:
        vader[parts[0]] = float(parts[1])
with open(here / "en_vader.tsv", "w", encoding="utf-8") as out:
    for word, v in vader.items():
        out.write(f"{word}\t{fmt(v)}\n")

# Emoji valence: VADER replaces each emoji by its English description and scores
# the words; we precompute that sum once (only emojis with a non-zero sum).
with open(here / "emoji.tsv", "w", encoding="utf-8") as out:
    for line in open(root / "vaderSentiment/vaderSentiment/emoji_utf8_lexicon.txt", encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 2:
            continue
        emoji, desc = parts
        total = sum(vader.get(w, 0.0) for w in desc.lower().split())
        total = max(-4.0, min(4.0, total))
        if abs(total) >= 0.05:
            out.write(f"{emoji}\t{fmt(total)}\n")

# French VADER (vaderSentiment-fr): token->valence -> token<TAB>valence (last one wins,
# as in the upstream Python dict). One- and two-letter words are dropped: they are
# translation artefacts ("v", "s") that collide with French elisions and abbreviations.
fr = {}
fr_dir = next(root.glob("vaderSentiment_fr-*/vaderSentiment_fr-*/vaderSentiment_fr"))
for line in open(fr_dir / "fr_lexicon.txt", encoding="utf-8"):
    line = line.rstrip("\n")
    if "->" in line:
        word, v = line.rsplit("->", 1)
        fr[word] = float(v)
with open(here / "fr_vader.tsv", "w", encoding="utf-8") as out:
    for word, v in fr.items():
        if len(word) <= 2 and word.isalpha():
            continue
        out.write(f"{word}\t{fmt(v)}\n")

# Pattern's French adjective lexicon (textblob-fr fr-sentiment.xml, PDDL):
# form<TAB>mean polarity over its entries, zero polarities dropped. Adverbs (RB)
# are intensity modifiers, not opinions, and entries Pattern rates as objective
# (subjectivity < 0.2, e.g. "royal", "tout") carry no opinion: both are left out.
acc = collections.defaultdict(list)
xml = (root / "textblob_fr/textblob_fr/fr-sentiment.xml").read_text(encoding="utf-8")
for m in re.finditer(r"<word ([^>]*)/>", xml):
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
    if attrs.get("pos") == "RB" or float(attrs.get("subjectivity", "0")) < 0.2:
        continue
    acc[attrs["form"].lower()].append(float(attrs["polarity"]))
with open(here / "fr_pattern.tsv", "w", encoding="utf-8") as out:
    for word, vs in acc.items():
        v = sum(vs) / len(vs)
        if abs(v) >= 0.005:
            out.write(f"{word}\t{fmt(v)}\n")
