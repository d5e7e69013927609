"""Deterministic synthetic event texts for encoder benchmarks: item titles, reviews, queries.

Real traffic is mostly short (titles of clicked items, search queries of 1-8 words) with a
tail of reviews of 5-80 words; throughput depends on that length mix far more than on the
words themselves, so the generator reproduces the mix from a fixed seed and small
vocabularies instead of shipping a data set.
"""

from __future__ import annotations

import random

_BRANDS = (
    "Acme",
    "Nordlys",
    "Kestrel",
    "Orbit",
    "Lumen",
    "Vantage",
    "Pinecrest",
    "Solace",
    "Ridgeway",
    "Halcyon",
    "Marlow",
    "Tundra",
    "Cobalt",
    "Juniper",
    "Fathom",
    "Ember",
)
_ADJECTIVES = (
    "wireless",
    "waterproof",
    "compact",
    "ergonomic",
    "vintage",
    "organic",
    "lightweight",
    "stainless",
    "handmade",
    "portable",
    "noise-cancelling",
    "adjustable",
    "foldable",
    "rechargeable",
    "insulated",
    "ultra-thin",
    "heavy-duty",
    "smart",
    "classic",
    "deluxe",
)
_PRODUCTS = (
    "headphones",
    "running shoes",
    "coffee grinder",
    "desk lamp",
    "backpack",
    "yoga mat",
    "mechanical keyboard",
    "water bottle",
    "air fryer",
    "phone case",
    "winter jacket",
    "blender",
    "gaming mouse",
    "tent",
    "electric toothbrush",
    "camera lens",
    "office chair",
    "bluetooth speaker",
    "cast iron skillet",
    "fitness tracker",
    "espresso machine",
)
_COLORS = ("black", "white", "navy", "olive", "red", "graphite", "sand", "teal", "rose gold")
_GENRES = (
    "thriller",
    "romance",
    "science fiction",
    "fantasy",
    "documentary",
    "mystery",
    "historical drama",
    "horror",
    "comedy",
    "biography",
    "cookbook",
    "poetry",
)
_NOUNS = (
    "love",
    "night",
    "river",
    "kingdom",
    "shadow",
    "garden",
    "city",
    "storm",
    "winter",
    "memory",
    "machine",
    "island",
    "secret",
    "empire",
    "journey",
    "letters",
    "silence",
)
_OPENERS = (
    "I bought this for my daughter and",
    "After three weeks of daily use,",
    "Honestly,",
    "Not what I expected:",
    "Five stars:",
    "Returned it because",
    "Compared to my old one,",
    "The delivery was quick and",
    "I was skeptical at first but",
    "Watched it with friends and",
)
_CLAUSES = (
    "the build quality feels solid",
    "the battery barely lasts a day",
    "the plot drags in the middle",
    "the sound is crisp and the bass is deep",
    "it broke after a month of light use",
    "customer service replaced it without questions",
    "the instructions were confusing",
    "the acting was superb throughout",
    "it is much smaller than the pictures suggest",
    "the ending completely surprised me",
    "it fits perfectly and looks great",
    "the price is fair for what you get",
    "the app keeps disconnecting",
    "the characters felt flat and predictable",
    "I would happily buy it again",
    "the colors faded after the first wash",
    "it heats up evenly and cleans easily",
    "the soundtrack alone is worth it",
    "the zipper got stuck on day two",
    "my kids have not stopped talking about it",
)
_CONNECTORS = (", and", ", but", ". Also,", "; however,", ". Overall,", ", although", ". Still,")
_QUERY_WORDS = (
    "best",
    "cheap",
    "near me",
    "review",
    "2024",
    "for kids",
    "gift",
    "sale",
    "vs",
    "how to clean",
    "replacement",
    "small",
    "large",
    "men",
    "women",
    "under 50",
    "quiet",
)


def _title(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.55:
        parts = [rng.choice(_BRANDS), rng.choice(_ADJECTIVES), rng.choice(_PRODUCTS)]
        if rng.random() < 0.5:
            parts.append(f"- {rng.choice(_COLORS).title()}")
        if rng.random() < 0.3:
            parts.append(f"({rng.randint(2, 6)}-Pack)")
        return " ".join(parts)
    if kind < 0.85:
        first, second = rng.choice(_NOUNS).title(), rng.choice(_NOUNS).title()
        return f"The {first} of {second}: A {rng.choice(_GENRES).title()}"
    return f"{rng.choice(_NOUNS).title()} {rng.choice(_NOUNS).title()} (Season {rng.randint(1, 9)})"


def _review(rng: random.Random, min_words: int = 5, max_words: int = 80) -> str:
    target = rng.randint(min_words, max_words)
    text = rng.choice(_CLAUSES)
    if target > 8:
        text = f"{rng.choice(_OPENERS)} {text}"
    while len(text.split()) < target:
        text += f"{rng.choice(_CONNECTORS)} {rng.choice(_CLAUSES)}"
    text = " ".join(text.split()[:target]).rstrip(",;.")
    return text[0].upper() + text[1:] + rng.choice((".", "!", ".", "..."))


def _query(rng: random.Random) -> str:
    count = rng.randint(1, 8)
    pool = [
        rng.choice(_ADJECTIVES),
        rng.choice(_PRODUCTS),
        rng.choice(_BRANDS).lower(),
        rng.choice(_GENRES),
        rng.choice(_NOUNS),
        rng.choice(_COLORS),
        *rng.sample(_QUERY_WORDS, 3),
    ]
    rng.shuffle(pool)
    return " ".join(" ".join(pool).split()[:count])


def titles(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(f"titles:{seed}")
    return [_title(rng) for _ in range(count)]


def reviews(count: int, seed: int = 7, min_words: int = 5, max_words: int = 80) -> list[str]:
    rng = random.Random(f"reviews:{seed}")
    return [_review(rng, min_words, max_words) for _ in range(count)]


def queries(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(f"queries:{seed}")
    return [_query(rng) for _ in range(count)]


def bench_corpora(texts_per_corpus: int = 1000, seed: int = 7) -> dict[str, list[str]]:
    """The three corpora the encoder benchmark reports, each of `texts_per_corpus` texts.

    mixed: 40% titles, 40% queries, 20% reviews of 5-80 words, shuffled (a click-heavy
    stream); short: titles and queries only; long: reviews of 40-80 words only.
    """
    n = texts_per_corpus
    rng = random.Random(f"mix:{seed}")
    n_titles = n * 2 // 5
    n_queries = n * 2 // 5
    mixed = (
        titles(n_titles, seed) + queries(n_queries, seed) + reviews(n - n_titles - n_queries, seed)
    )
    rng.shuffle(mixed)
    short = titles(n - n // 2, seed + 1) + queries(n // 2, seed + 1)
    rng.shuffle(short)
    long = reviews(n, seed + 2, min_words=40, max_words=80)
    return {"mixed": mixed, "short": short, "long": long}
