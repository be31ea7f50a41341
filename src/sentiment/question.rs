//! Question detection in French and English: a question mark outside links,
//! or a sentence that opens with an interrogative form ("pourquoi",
//! "est-ce que", "pouvez-vous", "why", "when will", "can you" ...), or a
//! stock phrase asking for news ("any update", "des nouvelles").

use super::text::{Kind, Token};

/// Sentence openers that are questions on their own.
const OPENERS: &[&str] = &[
    "why", "pourquoi", "combien", "comment", "quel", "quelle", "quels", "quelles", "lequel",
    "laquelle", "est-ce", "n'est-ce",
];

/// Openers that are questions when followed by one of these words.
const OPENER_PAIRS: &[(&str, &[&str])] = &[
    (
        "how",
        &[
            "do", "does", "did", "can", "could", "is", "are", "was", "long", "much", "many",
            "come", "about", "should", "will", "would", "to",
        ],
    ),
    (
        "when",
        &[
            "will", "is", "are", "do", "does", "did", "can", "could", "was", "should", "would",
        ],
    ),
    (
        "what",
        &[
            "is", "are", "was", "were", "do", "does", "did", "happened", "about", "should", "can",
            "will", "time", "now", "'s", "the",
        ],
    ),
    ("what's", &[]),
    (
        "where",
        &[
            "is", "are", "do", "does", "did", "can", "was", "should", "will",
        ],
    ),
    ("where's", &[]),
    (
        "who",
        &[
            "is", "are", "can", "will", "did", "knows", "should", "was", "does",
        ],
    ),
    ("which", &["one", "is", "are", "do", "should"]),
    (
        "is",
        &["there", "it", "this", "that", "anyone", "anybody", "the"],
    ),
    ("are", &["there", "you", "we", "they", "the"]),
    ("can", &["you", "i", "we", "someone", "anyone"]),
    ("could", &["you", "i", "we", "someone", "anyone"]),
    ("would", &["you", "it"]),
    ("will", &["you", "there", "it", "the", "we"]),
    ("do", &["you", "we", "i", "they"]),
    ("does", &["anyone", "anybody", "this", "it", "that", "the"]),
    ("did", &["you", "anyone", "anybody", "the", "they"]),
    ("have", &["you", "they", "we"]),
    ("has", &["anyone", "anybody", "the", "it"]),
    (
        "any",
        &["update", "updates", "news", "idea", "ideas", "eta", "word"],
    ),
    ("anyone", &["know", "knows"]),
    (
        "quand",
        &[
            "est-ce",
            "va",
            "vont",
            "allez",
            "sera",
            "seront",
            "pourra",
            "pourrons",
            "pourrai",
            "aura",
            "aurons",
            "reviendra",
            "arrive",
            "arrivera",
            "comptez",
            "pensez",
        ],
    ),
    (
        "où",
        &[
            "est", "sont", "en", "puis", "peut", "peux", "trouver", "va", "vont", "est-ce",
            "sont-ils",
        ],
    ),
    ("qui", &["peut", "sait", "va", "est-ce", "a"]),
    ("quelqu'un", &["sait", "peut", "a"]),
    ("des", &["nouvelles"]),
    ("une", &["idée"]),
];

/// Verb forms that, inverted with a subject pronoun, ask a question:
/// "pouvez-vous", "va-t-il", "avez-vous".
const INVERTED_VERBS: &[&str] = &[
    "pouvez", "pourriez", "avez", "êtes", "allez", "savez", "voulez", "comptez", "devez", "pensez",
    "peut", "pourrait", "va", "a", "est", "sont", "ont", "vont", "faut", "sera", "seront", "peux",
    "pourrais", "as", "es", "sais", "veux", "dois", "aurez", "aura", "doit", "avons", "sommes",
    "pouvons", "allons",
];
const SUBJECT_PRONOUNS: &[&str] = &[
    "vous", "tu", "il", "elle", "on", "ils", "elles", "je", "nous",
];

/// Phrases that ask anywhere in a sentence.
const ASKING_PHRASES: &[&[&str]] = &[
    &["i", "wonder"],
    &["any", "update"],
    &["any", "updates"],
    &["any", "news"],
    &["je", "me", "demande"],
    &["on", "se", "demande"],
];

/// Leading words that do not change what the sentence is.
const FILLERS: &[&str] = &[
    "and", "but", "so", "ok", "okay", "hi", "hello", "hey", "please", "et", "mais", "alors",
    "donc", "bonjour", "bonsoir", "salut", "svp", "stp", "euh", "bref",
];

fn is_inverted(word: &str) -> bool {
    let mut parts = word.split('-');
    let Some(verb) = parts.next() else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    let pronoun = match rest.as_slice() {
        [p] => *p,
        ["t", p] => *p,
        _ => return false,
    };
    INVERTED_VERBS.contains(&verb) && SUBJECT_PRONOUNS.contains(&pronoun)
}

fn sentence_asks(words: &[&str]) -> bool {
    let start = words.iter().take_while(|w| FILLERS.contains(w)).count();
    let words = &words[start..];
    if let Some(first) = words.first() {
        if OPENERS.contains(first) || is_inverted(first) {
            return true;
        }
        // "qu'est-ce que": the elided "qu'" is a token of its own.
        if *first == "qu'" && words.get(1) == Some(&"est-ce") {
            return true;
        }
        let second = words.get(1).copied().unwrap_or("");
        for (opener, nexts) in OPENER_PAIRS {
            if first == opener && (nexts.is_empty() || nexts.contains(&second)) {
                return true;
            }
        }
    }
    ASKING_PHRASES
        .iter()
        .any(|phrase| words.windows(phrase.len()).any(|w| w == *phrase))
}

pub(crate) fn is_question(tokens: &[Token]) -> bool {
    if tokens
        .iter()
        .any(|t| t.kind == Kind::Punct && t.text == "?")
    {
        return true;
    }
    let mut sentence: Vec<&str> = Vec::new();
    for t in tokens {
        if t.is_boundary() {
            if sentence_asks(&sentence) {
                return true;
            }
            sentence.clear();
        } else if t.is_word() && !t.hashtag {
            sentence.push(t.text.as_str());
        }
    }
    sentence_asks(&sentence)
}

#[cfg(test)]
mod tests {
    use super::super::is_question;

    #[test]
    fn question_marks_and_interrogative_forms_are_questions() {
        for text in [
            "Le train part à quelle heure ?",
            "is it fixed?",
            "Pourquoi le site est en panne",
            "Est-ce que le vol de 14h est maintenu",
            "Qu'est-ce qui se passe à la gare",
            "Pouvez-vous me rappeler",
            "Va-t-il y avoir un remboursement",
            "Quand est-ce que ça revient",
            "@user bonjour, combien de temps encore",
            "When will the service be back",
            "Why is nobody answering",
            "Can you check my order please",
            "Any update on the outage",
            "I wonder whether the trains run today",
            "Des nouvelles du vol AF123",
        ] {
            assert!(is_question(text), "{text:?} is a question");
        }
    }

    #[test]
    fn statements_are_not_questions() {
        for text in [
            "Merci pour votre réponse rapide",
            "Quand je suis arrivé, la gare était fermée.",
            "Taisez-vous un peu",
            "What a great team, thanks!",
            "How nice of you to answer so fast",
            "The service is back, thank you",
            "Voir http://example.com/faq?id=3",
            "",
        ] {
            assert!(!is_question(text), "{text:?} is not a question");
        }
    }
}
