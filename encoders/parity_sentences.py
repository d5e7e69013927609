"""Fixed sentences every export is checked against before it is saved.

They span what the encoder meets in production and what breaks exports: one-word queries,
titles, long reviews (one past the 256-token truncation), empty-ish input, accents,
non-Latin scripts, emoji, numbers, code and URLs. Changing them changes the parity figures
recorded in meta.json, not the model_id.
"""

from __future__ import annotations

_LONG_REVIEW = (
    "I have owned a lot of espresso machines over the last fifteen years, from cheap "
    "pressurised-basket models to a lever machine that needed a small ritual every morning, "
    "and this one sits somewhere comfortably in the middle. The steam wand is strong enough "
    "for latte art once you learn to stretch the milk early, the portafilter is heavy and "
    "feels like it will last, and the temperature is stable across back-to-back shots. "
    "What I do not like: the drip tray fills up far too quickly, the water tank is awkward "
    "to remove when the machine sits under a cabinet, and the manual is translated so badly "
    "that I ended up watching videos instead. Customer support answered within a day when "
    "the pressure gauge stuck, and they sent a replacement part without asking for a receipt. "
)

PARITY_SENTENCES: tuple[str, ...] = (
    "a",
    "?",
    "headphones",
    "cheap flights to lisbon",
    "best noise cancelling headphones under 200",
    "how to descale an espresso machine",
    "The Name of the Wind",
    "Kestrel Wireless Noise-Cancelling Headphones - Black (2-Pack)",
    "Stainless Steel Cast Iron Skillet, 12 inch, Pre-Seasoned",
    "The Shadow of the River: A Historical Drama (Season 3)",
    "Loved it!",
    "Terrible. Broke after two days.",
    "Not bad, not great either. It does the job for the price.",
    "The battery barely lasts a day and the app keeps disconnecting from my phone.",
    "Five stars: the sound is crisp, the bass is deep and they are comfortable for hours.",
    "I was skeptical at first but the plot grabbed me from the first chapter and never let go.",
    "The acting was superb, although the ending felt rushed and the soundtrack was too loud.",
    "Returned it because it is much smaller than the pictures suggest.",
    "My kids have not stopped talking about this movie since we watched it on Saturday.",
    _LONG_REVIEW,
    _LONG_REVIEW * 3,
    "Café crème brûlée à la carte, très délicieux!",
    "Ein wirklich gutes Buch über die Geschichte Berlins.",
    "Me encantó la película, la recomiendo muchísimo.",
    "Этот фильм был потрясающим",
    "日本語の小説がとても面白かった",
    "这部电影非常好看",
    "😀👍🔥 best purchase ever 🎉",
    "!!!???...",
    '4K UHD 65" TV, 120Hz, HDR10+, model X-9000 (2024)',
    "Order #12345 arrived on 2024-03-17 at 10:45, 3 days late.",
    "price: $19.99 -> $14.99 (25% off)",
    "def encode(texts): return model(texts)",
    "https://example.com/products/42?ref=homepage&utm_source=newsletter",
    "user@example.com asked about shipping to Canada",
    "WHY IS THIS SO EXPENSIVE",
    "the the the the the the the the the the",
    "science fiction space opera with strong female lead",
    "   leading and trailing spaces   ",
    "line one\nline two\ttabbed",
)
