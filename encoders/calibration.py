"""The texts static int8 quantization is calibrated on: fixed, generated, shaped like traffic.

Activation ranges are measured once at export and then fixed for every text the encoder
will ever see, so the corpus has to reach the ranges real inputs reach: short titles and
queries (most traffic), reviews up to and past the 256-token truncation, other scripts,
emoji, numbers and code. It is generated from a fixed seed and small vocabularies (no data
set, no lab code) and shares no sentence with the parity set the export is judged on.
"""

from __future__ import annotations

import random

_BRANDS = ("Aster", "Brightwell", "Corvid", "Dunmore", "Eastlake", "Foxglove", "Granite", "Heron")
_ADJECTIVES = (
    "cordless",
    "leather",
    "bamboo",
    "magnetic",
    "ceramic",
    "quiet",
    "solar",
    "carbon",
    "retro",
    "travel",
    "kids'",
    "professional",
)
_PRODUCTS = (
    "kettle",
    "hiking boots",
    "standing desk",
    "drone",
    "rice cooker",
    "e-reader",
    "sleeping bag",
    "monitor arm",
    "board game",
    "vacuum cleaner",
    "watch strap",
    "hair dryer",
    "puzzle",
    "smartwatch",
)
_GENRES = ("noir", "memoir", "space western", "cozy mystery", "war drama", "anime", "sitcom")
_WORDS = (
    "harbor",
    "orchard",
    "glass",
    "thunder",
    "lantern",
    "desert",
    "echo",
    "paper",
    "signal",
    "crown",
    "tide",
    "ember",
)
_CLAUSES = (
    "the hinge started squeaking within a week",
    "setup took five minutes and the app just worked",
    "the narrator's voice carries the whole book",
    "it keeps coffee hot for most of the morning",
    "the second season loses the plot entirely",
    "shipping was slow but the packaging was perfect",
    "the fabric pills after a couple of washes",
    "my partner borrowed it and never gave it back",
    "the screen is bright enough to read outdoors",
    "the villain is far more interesting than the hero",
    "the charger runs hot and smells of plastic",
    "the recipes are simple and actually taste good",
    "it is louder than the listing claims",
    "the dialogue feels natural and often very funny",
)
_LINKS = (", and", ", but", ". Then", "; still,", ". In the end,", ", which means")
_VARIED = (
    "Livraison rapide, produit conforme à la description.",
    "Das Hörbuch ist gut gelesen, aber viel zu lang.",
    "La batería dura todo el día y carga rápido.",
    "Ottimo rapporto qualità prezzo, lo consiglio.",
    "Книга понравилась, но конец слабый",
    "このヘッドホンは音がとてもクリアです",
    "音质很好，但是电池不耐用",
    "이 영화 정말 재미있어요",
    "🎧🔋👎 battery died on day 3",
    "10/10 would binge again 🍿🍿",
    "SKU 88-1043-B, 2 x 500 ml, EAN 4006381333931",
    "Rated 4.5/5 by 1,284 shoppers; ships in 2-3 days",
    "SELECT title FROM books WHERE rating > 4;",
    "http://shop.example.org/item?id=991&color=teal",
    "...",
    "ok",
    "N/A",
    "BUY NOW!!! LIMITED OFFER!!!",
    "wow wow wow wow wow wow",
    "\tindented\nmulti-line\nnote",
)


def _title(rng: random.Random) -> str:
    if rng.random() < 0.6:
        words = [rng.choice(_BRANDS), rng.choice(_ADJECTIVES), rng.choice(_PRODUCTS)]
        if rng.random() < 0.4:
            words.append(f"({rng.randint(1, 4)} pcs)")
        return " ".join(words)
    return f"{rng.choice(_WORDS).title()} and {rng.choice(_WORDS).title()}: a {rng.choice(_GENRES)}"


def _query(rng: random.Random) -> str:
    pool = [rng.choice(_ADJECTIVES), rng.choice(_PRODUCTS), rng.choice(_GENRES), "cheap", "best"]
    rng.shuffle(pool)
    return " ".join(" ".join(pool).split()[: rng.randint(1, 7)])


def _review(rng: random.Random, words: int) -> str:
    text = rng.choice(_CLAUSES)
    while len(text.split()) < words:
        text += f"{rng.choice(_LINKS)} {rng.choice(_CLAUSES)}"
    text = " ".join(text.split()[:words]).rstrip(",;.")
    return text[0].upper() + text[1:] + "."


def calibration_texts(seed: int = 20240611) -> tuple[str, ...]:
    """About 240 texts: titles, queries, reviews of 5 to ~300 words, and odd inputs."""
    rng = random.Random(seed)
    texts = [_title(rng) for _ in range(80)]
    texts += [_query(rng) for _ in range(60)]
    texts += [_review(rng, rng.randint(5, 120)) for _ in range(70)]
    texts += [_review(rng, rng.randint(200, 320)) for _ in range(10)]
    texts += _VARIED
    return tuple(texts)
