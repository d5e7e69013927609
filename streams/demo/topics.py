"""The planted topics of generated workloads: phrase lists that make item titles, queries,
and the reviews users write about them. `TOPICS` are the demo's; `EXTRA_TOPICS` widen the
choice for users with many planted interests; `GENRES` label each topic in templated
catalogue texts, where a few common genres recur across topics as in real catalogues."""

from __future__ import annotations

from typing import Any

TOPICS: dict[str, dict[str, Any]] = {
    "space films": {
        "domain": "movies",
        "subjects": [
            "Astronauts",
            "A starship crew",
            "A lone pilot",
            "The mission commander",
            "Alien explorers",
            "A rookie cosmonaut",
        ],
        "actions": [
            "stranded on Mars",
            "racing through a wormhole",
            "fighting to survive in orbit",
            "landing on a frozen moon",
            "searching for a habitable planet",
            "escaping a dying space station",
        ],
        "queries": [
            "space movies",
            "sci-fi films about astronauts",
            "best space exploration film",
            "movies set on mars",
            "interstellar travel movie",
        ],
    },
    "cooking": {
        "domain": "recipes",
        "subjects": [
            "Quick weeknight",
            "Slow-cooked",
            "Classic Italian",
            "Spicy Thai",
            "Healthy vegetarian",
            "One-pot",
        ],
        "actions": [
            "pasta with garlic and basil",
            "chicken curry with coconut milk",
            "beef stew with root vegetables",
            "lentil soup with cumin",
            "risotto with mushrooms",
            "stir-fried noodles with tofu",
        ],
        "queries": [
            "easy dinner recipes",
            "how to cook curry",
            "pasta recipe",
            "vegetarian soup recipe",
            "what to cook tonight",
        ],
    },
    "jazz": {
        "domain": "music",
        "subjects": ["Late-night", "Smoky club", "Bebop", "Cool", "Modal", "Live"],
        "actions": [
            "saxophone improvisation album",
            "jazz piano trio record",
            "trumpet ballads collection",
            "big band swing session",
            "double bass and drums jam",
            "jazz standards with a singer",
        ],
        "queries": [
            "jazz albums",
            "best saxophone records",
            "jazz piano music",
            "swing music playlist",
            "bebop classics",
        ],
    },
    "hiking": {
        "domain": "outdoors",
        "subjects": ["Alpine", "Coastal", "Desert", "Forest", "Volcanic", "Glacier"],
        "actions": [
            "trail guide for a three-day trek",
            "hiking boots for rocky paths",
            "backpacking tent for mountain camping",
            "route map of ridge walks",
            "water filter for long hikes",
            "trekking poles for steep descents",
        ],
        "queries": [
            "hiking trails",
            "best hiking boots",
            "mountain trekking gear",
            "backpacking tent",
            "day hikes near me",
        ],
    },
    "programming": {
        "domain": "books",
        "subjects": [
            "A practical guide to",
            "Mastering",
            "Learning",
            "The art of",
            "Advanced",
            "Beginner's handbook of",
        ],
        "actions": [
            "Python programming",
            "distributed systems design",
            "Rust for systems code",
            "database internals",
            "functional programming in Haskell",
            "compilers and interpreters",
        ],
        "queries": [
            "programming books",
            "learn python",
            "software engineering book",
            "how databases work",
            "best book on compilers",
        ],
    },
    "football": {
        "domain": "sports",
        "subjects": [
            "Champions League",
            "Premier League",
            "World Cup",
            "Derby day",
            "Cup final",
            "Transfer window",
        ],
        "actions": [
            "match highlights and goals",
            "tactical analysis of the striker",
            "penalty shootout drama",
            "goalkeeper saves compilation",
            "coach press conference",
            "midfield passing masterclass",
        ],
        "queries": [
            "football highlights",
            "soccer match results",
            "best goals this season",
            "premier league news",
            "world cup goals",
        ],
    },
    "gardening": {
        "domain": "home",
        "subjects": ["Organic", "Balcony", "Cottage", "Vegetable", "Herb", "Rose"],
        "actions": [
            "garden planting calendar",
            "compost and soil guide",
            "seeds for tomatoes and peppers",
            "pruning shears for shrubs",
            "raised bed kit for vegetables",
            "watering can and hose set",
        ],
        "queries": [
            "gardening tips",
            "how to grow tomatoes",
            "best compost",
            "vegetable garden ideas",
            "pruning roses",
        ],
    },
    "mystery novels": {
        "domain": "books",
        "subjects": [
            "A detective",
            "An amateur sleuth",
            "A retired inspector",
            "Two rival spies",
            "A young journalist",
            "The village doctor",
        ],
        "actions": [
            "solves a murder on a night train",
            "uncovers a poisoning at the manor",
            "tracks a jewel thief through London",
            "investigates a locked-room mystery",
            "hunts a serial killer in the fog",
            "decodes a cipher left by the victim",
        ],
        "queries": [
            "mystery novels",
            "detective books",
            "best crime thriller",
            "whodunit books",
            "murder mystery series",
        ],
    },
}

PRAISE = [
    "Loved it: {t}. Absolutely wonderful.",
    "{t} was excellent, highly recommended.",
    "Really enjoyed {t}, great quality.",
]
COMPLAINTS = [
    "{t} was terrible, a waste of money.",
    "Hated {t}, very disappointing.",
    "{t}: boring and poorly made, do not recommend.",
]


EXTRA_TOPICS: dict[str, dict[str, Any]] = {
    "photography": {
        "domain": "hobbies",
        "subjects": ["Street", "Portrait", "Landscape", "Film", "Night", "Wildlife"],
        "actions": [
            "camera lens for sharp photos",
            "tripod for long exposures",
            "photo editing workflow",
            "guide to composition and light",
            "film developing kit",
            "flash for indoor shots",
        ],
        "queries": ["photography tips", "best camera lens", "how to edit photos"],
    },
    "board games": {
        "domain": "games",
        "subjects": ["Family", "Strategy", "Cooperative", "Party", "Classic", "Two-player"],
        "actions": [
            "board game for game night",
            "deck-building card game",
            "dice game with quick rounds",
            "war game with miniatures",
            "puzzle game for the table",
            "word game for friends",
        ],
        "queries": ["board games for adults", "best strategy board game", "party games"],
    },
    "yoga": {
        "domain": "fitness",
        "subjects": ["Morning", "Gentle", "Power", "Restorative", "Hatha", "Vinyasa"],
        "actions": [
            "yoga flow for flexibility",
            "breathing exercises for calm",
            "mat and blocks set",
            "stretching routine for the back",
            "meditation for beginners",
            "balance poses tutorial",
        ],
        "queries": ["yoga for beginners", "morning stretch routine", "meditation guide"],
    },
    "astronomy": {
        "domain": "science",
        "subjects": ["Backyard", "Amateur", "Deep-sky", "Planetary", "Solar", "Lunar"],
        "actions": [
            "telescope for stargazing",
            "star chart of the constellations",
            "guide to the planets",
            "eclipse viewing glasses",
            "astrophotography mount",
            "atlas of galaxies and nebulae",
        ],
        "queries": ["telescope for beginners", "stargazing tonight", "planets visible now"],
    },
}

GENRES: dict[str, list[str]] = {
    "space films": ["Sci-Fi", "Adventure"],
    "cooking": ["Food", "Lifestyle"],
    "jazz": ["Music", "Jazz"],
    "hiking": ["Outdoors", "Travel"],
    "programming": ["Technology", "Education"],
    "football": ["Sports", "Soccer"],
    "gardening": ["Home", "Garden"],
    "mystery novels": ["Mystery", "Thriller"],
    "photography": ["Art", "Hobby"],
    "board games": ["Games", "Family"],
    "yoga": ["Fitness", "Health"],
    "astronomy": ["Science", "Space"],
}
COMMON_GENRES = ("Drama", "Comedy", "Classic", "Bestseller")
