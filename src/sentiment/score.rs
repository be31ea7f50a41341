//! Lexicon scoring with VADER's rules (Hutto & Gilbert 2014), extended to
//! French: boosters and dampeners, negation ("not", "n't", "ne ... pas",
//! "sans"), "but"/"mais", ALL-CAPS and elongation emphasis, exclamation
//! marks, emojis and emoticons. The result is a handful of features that the
//! model (model.rs) combines. The constants and the English booster list come
//! from vaderSentiment, the French booster list from vaderSentiment-fr (both
//! MIT; see data/LICENSES.md).

use super::lexicon::{Lexicon, Lexicons, LEXICONS};
use super::text::{Kind, Token};
use super::Language;

/// VADER's empirical constants.
const B_INCR: f64 = 0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;
/// An elongated word ("goooood") is emphasised like a booster.
const ELONG_INCR: f64 = 0.293;

const EN_BOOSTERS: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormously",
    "entirely",
    "especially",
    "exceptionally",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fucking",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredibly",
    "intensely",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "totally",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utterly",
    "very",
    "super",
    "way",
    "too",
    "such",
];
const EN_DAMPENERS: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "kind of",
    "kinda",
    "kindof",
    "less",
    "little",
    "marginally",
    "occasionally",
    "partly",
    "scarcely",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "fairly",
    "rather",
];
const FR_BOOSTERS: &[&str] = &[
    "absolument",
    "archi",
    "beaucoup",
    "bigrement",
    "carrément",
    "complètement",
    "considérablement",
    "davantage",
    "drôlement",
    "entièrement",
    "excessivement",
    "extrêmement",
    "fort",
    "grandement",
    "hyper",
    "incroyablement",
    "infiniment",
    "profondément",
    "rudement",
    "sacrément",
    "spécialement",
    "super",
    "superbement",
    "tant",
    "tellement",
    "terriblement",
    "totalement",
    "trop",
    "très",
    "ultra",
    "vachement",
    "vraiment",
    "énormément",
    "grave",
    "si",
    "vraiment",
    "franchement",
    "particulièrement",
];
const FR_DAMPENERS: &[&str] = &[
    "assez",
    "difficilement",
    "guère",
    "juste",
    "légèrement",
    "moins",
    "peu",
    "plutôt",
    "presque",
    "quasi",
    "quasiment",
    "rarement",
];

/// Words that negate what follows them (within three words).
const EN_NEGATIONS: &[&str] = &[
    "not", "no", "never", "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt",
    "werent", "wont", "wouldnt", "shouldnt", "couldnt", "aint", "nor", "neither", "nobody",
    "nothing", "none", "nowhere", "without", "hardly", "rarely", "seldom", "despite",
];
/// French words that negate on their own; "ne"/"n'" negates together with a
/// following "pas", "plus", "jamais", "rien", "guère", "point" or "personne".
const FR_NEGATIONS: &[&str] = &[
    "pas",
    "jamais",
    "sans",
    "aucun",
    "aucune",
    "ni",
    "nullement",
    "aucunement",
];
const FR_NE_PARTNERS: &[&str] = &[
    "pas", "plus", "jamais", "rien", "guère", "point", "personne", "aucun", "aucune",
];
const EN_CONTRAST: &[&str] = &["but", "however", "yet"];
const FR_CONTRAST: &[&str] = &["mais", "cependant", "pourtant", "toutefois", "néanmoins"];

/// Number of features the model combines, in this order.
pub(crate) const N_FEATURES: usize = 11;

/// What one text contributes to the model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Features {
    /// VADER's normalised compound score, sum / sqrt(sum² + 15), in (-1, 1).
    pub compound: f64,
    /// Sum of positive word valences (after the rules), / 4.
    pub positive: f64,
    /// Sum of negative word valences (after the rules), as a positive number / 4.
    pub negative: f64,
    /// Sum of positive emoji and emoticon valences / 4.
    pub emoji_positive: f64,
    /// Sum of negative emoji and emoticon valences, as a positive number / 4.
    pub emoji_negative: f64,
    /// Valence, in the other language's lexicon, of words the text's own
    /// lexicon does not know (English words in a French tweet) / 4.
    pub other_language: f64,
    /// Exclamation marks, at most 3.
    pub exclamations: f64,
    /// 1 when the text contains a link (headlines often do).
    pub link: f64,
    /// ln(1 + number of words).
    pub length: f64,
    /// √positive: with `positive`, lets the model give the first hits more
    /// weight than further ones (diminishing returns).
    pub positive_sqrt: f64,
    /// √negative, likewise.
    pub negative_sqrt: f64,
}

impl Features {
    pub fn to_array(self) -> [f64; N_FEATURES] {
        [
            self.compound,
            self.positive,
            self.negative,
            self.emoji_positive,
            self.emoji_negative,
            self.other_language,
            self.exclamations,
            self.link,
            self.length,
            self.positive_sqrt,
            self.negative_sqrt,
        ]
    }
}

struct Rules {
    boosters: Vec<&'static str>,
    dampeners: Vec<&'static str>,
    negations: Vec<&'static str>,
    contrast: Vec<&'static str>,
    french_ne: bool,
}

fn rules(lang: Option<Language>) -> Rules {
    let (en, fr) = match lang {
        Some(Language::En) => (true, false),
        Some(Language::Fr) => (false, true),
        None => (true, true),
    };
    let pick = |a: &[&'static str], b: &[&'static str]| -> Vec<&'static str> {
        let mut v = Vec::new();
        if en {
            v.extend_from_slice(a);
        }
        if fr {
            v.extend_from_slice(b);
        }
        v
    };
    Rules {
        boosters: pick(EN_BOOSTERS, FR_BOOSTERS),
        dampeners: pick(EN_DAMPENERS, FR_DAMPENERS),
        negations: pick(EN_NEGATIONS, FR_NEGATIONS),
        contrast: pick(EN_CONTRAST, FR_CONTRAST),
        french_ne: fr,
    }
}

/// The lexicons to consult, own language first.
fn lexicons(lex: &Lexicons, lang: Option<Language>) -> (Vec<&Lexicon>, Option<&Lexicon>) {
    match lang {
        Some(Language::En) => (vec![&lex.en], Some(&lex.fr)),
        Some(Language::Fr) => (vec![&lex.fr], Some(&lex.en)),
        None => (vec![&lex.en, &lex.fr], None),
    }
}

fn own_valence(own: &[&Lexicon], word: &str) -> Option<f64> {
    own.iter().find_map(|l| l.word(word)).map(f64::from)
}

/// Computes the features of a tokenized text in the given language.
pub(crate) fn features(tokens: &[Token], lang: Option<Language>) -> Features {
    let lex = &*LEXICONS;
    let rules = rules(lang);
    let (own, other) = lexicons(lex, lang);
    let is_cap_diff = {
        let words: Vec<&Token> = tokens.iter().filter(|t| t.kind == Kind::Word).collect();
        let caps = words.iter().filter(|t| t.caps).count();
        caps > 0 && caps < words.len()
    };

    // (token index, valence, is an emoji or emoticon) of every scored item.
    let mut scored: Vec<(usize, f64, bool)> = Vec::new();
    let mut other_sum = 0.0;
    let mut skip_until = 0;
    for (i, tok) in tokens.iter().enumerate() {
        if i < skip_until {
            continue;
        }
        match tok.kind {
            Kind::Emoji => {
                if let Some(v) = lex.emoji.get(&tok.text) {
                    scored.push((i, f64::from(*v), true));
                }
            }
            Kind::Emoticon => {
                if let Some(v) = lex.emoticon(&tok.text) {
                    scored.push((i, f64::from(v), true));
                }
            }
            Kind::Word => {
                if let Some((v, len)) = phrase_at(tokens, i, &own) {
                    scored.push((i, v, false));
                    skip_until = i + len;
                    continue;
                }
                let word = tok.text.as_str();
                let Some(mut v) = own_valence(&own, word) else {
                    // English words in a French text (and the reverse); short
                    // words are too often false friends.
                    if word.chars().count() >= 4 {
                        if let Some(o) = other.and_then(|l| l.word(word)) {
                            other_sum += f64::from(o);
                        }
                    }
                    continue;
                };
                // A booster that modifies the next word carries no valence of its own.
                let is_modifier = rules.boosters.contains(&word) || rules.dampeners.contains(&word);
                if is_modifier && next_word_has_valence(tokens, i, &own) {
                    continue;
                }
                if v == 0.0 {
                    continue;
                }
                if tok.caps && is_cap_diff {
                    v += C_INCR * v.signum();
                }
                if tok.elongated {
                    v += ELONG_INCR * v.signum();
                }
                v += booster_effect(tokens, i, v, &rules, is_cap_diff);
                if negated(tokens, i, &rules) {
                    v *= N_SCALAR;
                }
                scored.push((i, v, false));
            }
            _ => {}
        }
    }

    // "but"/"mais": what follows weighs more than what precedes.
    if let Some(pivot) = tokens
        .iter()
        .position(|t| t.kind == Kind::Word && rules.contrast.contains(&t.text.as_str()))
    {
        for s in scored.iter_mut() {
            if s.0 < pivot {
                s.1 *= 0.5;
            } else if s.0 > pivot {
                s.1 *= 1.5;
            }
        }
    }

    let exclamations = tokens
        .iter()
        .filter(|t| t.kind == Kind::Punct && t.text == "!")
        .count();
    let questions = tokens
        .iter()
        .filter(|t| t.kind == Kind::Punct && t.text == "?")
        .count();
    let mut sum: f64 = scored.iter().map(|s| s.1).sum();
    if sum != 0.0 {
        let mut emphasis = exclamations.min(4) as f64 * 0.292;
        if questions > 1 {
            emphasis += questions.min(3) as f64 * 0.18;
        }
        sum += emphasis * sum.signum();
    }

    let mut f = Features {
        compound: sum / (sum * sum + 15.0).sqrt(),
        other_language: other_sum / 4.0,
        exclamations: exclamations.min(3) as f64,
        link: f64::from(u8::from(tokens.iter().any(|t| t.kind == Kind::Url))),
        length: ((tokens.iter().filter(|t| t.is_word()).count() + 1) as f64).ln(),
        ..Features::default()
    };
    for (_, v, is_emoji) in &scored {
        let v = v / 4.0;
        match (is_emoji, v > 0.0) {
            (true, true) => f.emoji_positive += v,
            (true, false) => f.emoji_negative -= v,
            (false, true) => f.positive += v,
            (false, false) => f.negative -= v,
        }
    }
    f.positive_sqrt = f.positive.sqrt();
    f.negative_sqrt = f.negative.sqrt();
    f
}

/// A multi-word lexicon entry of two or three words starting at `i`.
fn phrase_at(tokens: &[Token], i: usize, own: &[&Lexicon]) -> Option<(f64, usize)> {
    for len in [3, 2] {
        let window = tokens.get(i..i + len)?;
        if !window.iter().all(|t| t.is_word()) {
            continue;
        }
        let words: Vec<&str> = window
            .iter()
            .map(|t| t.text.trim_end_matches('\''))
            .collect();
        if let Some(v) = own.iter().find_map(|l| l.phrase(&words)) {
            return Some((f64::from(v), len));
        }
    }
    None
}

fn next_word_has_valence(tokens: &[Token], i: usize, own: &[&Lexicon]) -> bool {
    tokens
        .get(i + 1)
        .filter(|t| t.kind == Kind::Word)
        .and_then(|t| own_valence(own, &t.text))
        .is_some_and(|v| v != 0.0)
}

/// Up to three preceding words in the same clause, nearest first.
fn preceding(tokens: &[Token], i: usize) -> impl Iterator<Item = &Token> {
    tokens[..i]
        .iter()
        .rev()
        .take_while(|t| !t.is_clause_end())
        .filter(|t| t.is_word())
        .take(3)
}

fn booster_effect(tokens: &[Token], i: usize, v: f64, rules: &Rules, is_cap_diff: bool) -> f64 {
    let mut total = 0.0;
    for (distance, t) in preceding(tokens, i).enumerate() {
        let w = t.text.as_str();
        let mut scalar = if rules.boosters.contains(&w) {
            B_INCR
        } else if rules.dampeners.contains(&w) {
            -B_INCR
        } else {
            continue;
        };
        if t.caps && is_cap_diff {
            scalar += C_INCR * scalar.signum();
        }
        let decay = [1.0, 0.95, 0.9][distance];
        total += scalar * decay * v.signum();
    }
    total
}

fn negated(tokens: &[Token], i: usize, rules: &Rules) -> bool {
    let english = rules.negations.contains(&"not");
    let mut saw_ne = false;
    let mut saw_partner = false;
    for t in preceding(tokens, i) {
        let w = t.text.as_str();
        if rules.negations.contains(&w) || (english && w.ends_with("n't")) {
            return true;
        }
        saw_ne |= w == "ne" || w == "n'";
        saw_partner |= FR_NE_PARTNERS.contains(&w);
    }
    if !rules.french_ne || !saw_ne {
        return false;
    }
    // "ce n'est plus bon" (partner before the word) or "je n'aime pas"
    // (partner after it).
    saw_partner
        || tokens[i + 1..]
            .iter()
            .take_while(|t| !t.is_boundary())
            .filter(|t| t.is_word())
            .take(2)
            .any(|t| FR_NE_PARTNERS.contains(&t.text.as_str()))
}
