//! French/English detection for short texts: counts frequent function words
//! of each language (words both languages share, such as "a", "on", "son",
//! "plus", are left out), French elisions and accented letters.

use super::lexicon::LEXICONS;
use super::text::{Kind, Token};
use super::Language;

const FR_WORDS: &[&str] = &[
    "le",
    "la",
    "les",
    "un",
    "une",
    "des",
    "du",
    "de",
    "et",
    "est",
    "sont",
    "pas",
    "ne",
    "que",
    "qui",
    "quoi",
    "pour",
    "dans",
    "sur",
    "avec",
    "au",
    "aux",
    "ce",
    "cette",
    "ces",
    "il",
    "elle",
    "ils",
    "elles",
    "nous",
    "vous",
    "je",
    "tu",
    "mais",
    "ou",
    "où",
    "donc",
    "très",
    "tout",
    "tous",
    "toute",
    "toutes",
    "sans",
    "chez",
    "par",
    "sa",
    "ses",
    "leur",
    "leurs",
    "mon",
    "mes",
    "ton",
    "ta",
    "tes",
    "notre",
    "votre",
    "nos",
    "vos",
    "été",
    "être",
    "avoir",
    "fait",
    "ça",
    "oui",
    "non",
    "merci",
    "bonjour",
    "aussi",
    "quand",
    "pourquoi",
    "encore",
    "déjà",
    "toujours",
    "jamais",
    "rien",
    "peu",
    "bien",
    "avez",
    "suis",
    "es",
    "ai",
    "avons",
    "êtes",
    "était",
    "va",
    "vont",
    "faire",
    "dit",
    "comme",
    "si",
    "alors",
    "là",
    "ici",
    "y",
    "en",
    "lui",
    "moi",
    "toi",
    "eux",
    "aujourd'hui",
    "c'est",
    "chaque",
    "depuis",
    "entre",
    "après",
    "avant",
    "contre",
    "vers",
    "selon",
    "sous",
    "fois",
];

const EN_WORDS: &[&str] = &[
    "the", "an", "and", "is", "are", "was", "were", "be", "been", "to", "of", "in", "for", "with",
    "this", "that", "it", "you", "your", "i", "we", "they", "he", "she", "not", "no", "but",
    "what", "when", "why", "how", "have", "has", "had", "do", "does", "did", "will", "would",
    "can", "just", "so", "my", "our", "their", "at", "from", "by", "about", "all", "get", "if",
    "or", "there", "here", "who", "us", "don't", "i'm", "it's", "up", "out", "like", "now", "than",
    "then", "too", "very", "thanks", "thank", "please", "yes", "its", "his", "her", "them",
    "being", "should", "could", "any", "some", "more", "still", "today", "after", "before",
    "again", "never", "always", "can't", "won't", "didn't", "doesn't", "isn't", "you're", "we're",
    "they're", "that's", "what's", "off", "over", "into", "which", "where", "one", "new", "got",
    "going", "want",
];

fn has_french_accent(word: &str) -> bool {
    word.chars().any(|c| {
        matches!(
            c,
            'é' | 'è' | 'ê' | 'à' | 'ç' | 'ù' | 'û' | 'î' | 'ô' | 'â' | 'ë' | 'ï' | 'œ'
        )
    })
}

/// Evidence for each language, (french, english).
pub(crate) fn evidence(tokens: &[Token]) -> (f64, f64) {
    let mut fr = 0.0;
    let mut en = 0.0;
    for t in tokens {
        match t.kind {
            Kind::Elided => fr += 1.0,
            Kind::Word if !t.hashtag => {
                let w = t.text.as_str();
                if FR_WORDS.contains(&w) {
                    fr += 1.0;
                }
                if EN_WORDS.contains(&w) {
                    en += 1.0;
                }
                if has_french_accent(w) {
                    fr += 0.5;
                }
                if w.chars().count() >= 4 {
                    let lex = &*LEXICONS;
                    match (lex.fr.word(w).is_some(), lex.en.word(w).is_some()) {
                        (true, false) => fr += 0.5,
                        (false, true) => en += 0.5,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (fr, en)
}

/// The language with clearly more evidence; `None` without any word evidence
/// or when both are close.
pub(crate) fn detect(tokens: &[Token]) -> Option<Language> {
    let (fr, en) = evidence(tokens);
    if fr < 1.0 && en < 1.0 {
        return None;
    }
    if fr >= 1.0 && fr > en * 1.5 {
        Some(Language::Fr)
    } else if en >= 1.0 && en > fr * 1.5 {
        Some(Language::En)
    } else {
        None
    }
}
