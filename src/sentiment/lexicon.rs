//! The sentiment lexicons, embedded in the binary and parsed once: VADER's
//! English lexicon and emoji valences, the French VADER translation, Pattern's
//! French adjectives, and Herald's own additions. Sources and licences:
//! `src/sentiment/data/README.md`.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::text::{collapse_runs, fold_accents, has_run};

const EN_VADER: &str = include_str!("data/en_vader.tsv");
const FR_VADER: &str = include_str!("data/fr_vader.tsv");
const FR_PATTERN: &str = include_str!("data/fr_pattern.tsv");
const EMOJI: &str = include_str!("data/emoji.tsv");
const HERALD_EXTRA: &str = include_str!("data/herald_extra.tsv");

/// Pattern's adjective polarities are in [-1, 1]; VADER's valences in [-4, 4].
/// A Pattern entry is used only for a word the French VADER lexicon lacks.
const PATTERN_SCALE: f32 = 3.0;

/// One language's word and phrase valences (VADER scale, -4..4).
#[derive(Default)]
pub(crate) struct Lexicon {
    /// French inflections are reduced to a lexicon form when the exact
    /// form is missing ("menacées" → "menacée" → "menacé").
    french: bool,
    words: HashMap<String, f32>,
    /// Same entries keyed without accents (tweets often drop them); used
    /// only when the exact form is missing.
    folded: HashMap<String, f32>,
    /// Multi-word entries keyed by their words joined with one space.
    phrases: HashMap<String, f32>,
}

impl Lexicon {
    fn insert(&mut self, key: &str, valence: f32) {
        let key = key.to_lowercase();
        if key.contains(' ') {
            self.phrases.insert(key, valence);
            return;
        }
        if folding_is_safe(&key) {
            self.folded.insert(fold_accents(&key), valence);
        }
        self.words.insert(key, valence);
    }

    fn insert_if_absent(&mut self, key: &str, valence: f32) {
        if !self.words.contains_key(&key.to_lowercase()) {
            self.insert(key, valence);
        }
    }

    /// Valence of one lower-cased word: exact form, then without accents,
    /// then with elongations collapsed ("coooool" → "cool"), then (French)
    /// a regular base form ("menacées" → "menacé").
    pub fn word(&self, word: &str) -> Option<f32> {
        if let Some(v) = self.lookup(word) {
            return Some(v);
        }
        // Only a letter written three times or more is an elongation:
        // "salle" must not become "sale".
        if has_run(word, 3) {
            for keep in [2, 1] {
                if let Some(v) = self.lookup(&collapse_runs(word, keep)) {
                    return Some(v);
                }
            }
        }
        if !self.french {
            return None;
        }
        french_stems(word)
            .iter()
            .find_map(|s| self.words.get(s).copied())
    }

    /// Exact form, or, for a word written without any accent, an accented
    /// entry (a word written with accents is trusted as written: "après"
    /// is not "âpres").
    fn lookup(&self, word: &str) -> Option<f32> {
        if let Some(v) = self.words.get(word) {
            return Some(*v);
        }
        let folded = fold_accents(word);
        if folded == word {
            self.folded.get(&folded).copied()
        } else {
            None
        }
    }

    /// Valence of a multi-word entry ("fed up", "sans espoir").
    pub fn phrase(&self, words: &[&str]) -> Option<f32> {
        if self.phrases.is_empty() {
            return None;
        }
        self.phrases.get(&words.join(" ")).copied()
    }
}

/// Whether an accented entry may also match its unaccented spelling. Not
/// for short words, where accents tell words apart ("sur"/"sûr"), nor for a
/// final accented letter, which tells a participle from the present tense
/// ("passé"/"passe", "pressé"/"presse").
fn folding_is_safe(key: &str) -> bool {
    let mut letters = key.trim_end_matches('s').chars().rev();
    let last_plain = letters
        .next()
        .is_some_and(|c| fold_accents(&c.to_string()) == c.to_string());
    let before_last_plain = !key.trim_end_matches('s').ends_with("ée");
    key.chars().count() >= 5 && last_plain && before_last_plain
}

/// Base forms to try for an inflected French word (plural, then the
/// feminine of regular adjectives), most specific first; looked up exactly.
fn french_stems(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    if word.chars().count() < 5 {
        return out;
    }
    let mut push = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    let singular = word
        .strip_suffix('s')
        .or_else(|| word.strip_suffix('x'))
        .unwrap_or(word);
    push(singular.to_string());
    for (suffix, replacement) in [
        ("aux", "al"),
        ("euse", "eux"),
        ("ive", "if"),
        ("ienne", "ien"),
        ("elle", "el"),
        ("ère", "er"),
        ("ette", "et"),
        ("ée", "é"),
        ("te", "t"),
        ("de", "d"),
        ("se", "s"),
    ] {
        for base in [word, singular] {
            if let Some(stem) = base.strip_suffix(suffix) {
                push(format!("{stem}{replacement}"));
            }
        }
    }
    out
}

pub(crate) struct Lexicons {
    pub en: Lexicon,
    pub fr: Lexicon,
    /// Single pictographs (variation selectors stripped).
    pub emoji: HashMap<String, f32>,
    /// ASCII emoticons, exact case (":D") and lower case.
    pub emoticons: HashMap<String, f32>,
}

impl Lexicons {
    pub fn emoticon(&self, chunk: &str) -> Option<f32> {
        self.emoticons
            .get(chunk)
            .or_else(|| self.emoticons.get(&chunk.to_lowercase()))
            .copied()
    }
}

pub(crate) static LEXICONS: LazyLock<Lexicons> = LazyLock::new(build);

/// `token<TAB>valence` lines; malformed lines are skipped (the files are ours
/// and checked by a unit test).
fn pairs(tsv: &str) -> impl Iterator<Item = (&str, f32)> {
    tsv.lines().filter_map(|line| {
        let (key, value) = line.split_once('\t')?;
        Some((key, value.trim().parse::<f32>().ok()?))
    })
}

/// An emoticon has no whitespace and at least one face-drawing symbol;
/// "can't" or "cover-up" are words.
fn is_emoticon_key(key: &str) -> bool {
    !key.contains(' ') && key.chars().any(|c| ":;=()[]<>^_*|/\\{}".contains(c))
}

fn strip_emoji_fillers(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{200D}'))
        .collect()
}

fn build() -> Lexicons {
    let mut en = Lexicon::default();
    let mut fr = Lexicon {
        french: true,
        ..Lexicon::default()
    };
    let mut emoji = HashMap::new();
    let mut emoticons = HashMap::new();
    for (key, v) in pairs(EN_VADER) {
        if is_emoticon_key(key) {
            emoticons.insert(key.to_string(), v);
            emoticons.entry(key.to_lowercase()).or_insert(v);
        } else {
            en.insert(key, v);
        }
    }
    for (key, v) in pairs(FR_VADER) {
        if is_emoticon_key(key) {
            emoticons.entry(key.to_string()).or_insert(v);
        } else {
            fr.insert(key, v);
        }
    }
    for (key, v) in pairs(FR_PATTERN) {
        fr.insert_if_absent(key, v * PATTERN_SCALE);
    }
    for (key, v) in pairs(EMOJI) {
        let key = strip_emoji_fillers(key);
        if key.chars().count() == 1 {
            emoji.insert(key, v);
        }
    }
    for line in HERALD_EXTRA.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(lang), Some(key), Some(value)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f32>() else {
            continue;
        };
        match lang {
            "all" => {
                emoji.insert(strip_emoji_fillers(key), v);
            }
            "en" => en.insert(key, v),
            "fr" => fr.insert(key, v),
            _ => {}
        }
    }
    Lexicons {
        en,
        fr,
        emoji,
        emoticons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_data_line_parses() {
        for (name, tsv) in [
            ("en_vader", EN_VADER),
            ("fr_vader", FR_VADER),
            ("fr_pattern", FR_PATTERN),
            ("emoji", EMOJI),
        ] {
            let lines = tsv.lines().count();
            assert!(lines > 100, "{name} looks empty");
            assert_eq!(pairs(tsv).count(), lines, "{name} has a malformed line");
        }
        let mut keys = std::collections::HashSet::new();
        for line in HERALD_EXTRA.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            assert!(keys.insert((cols[0], cols[1])), "duplicate entry {line:?}");
            assert_eq!(cols.len(), 3, "bad line {line:?}");
            assert!(["all", "en", "fr"].contains(&cols[0]), "bad lang {line:?}");
            let v: f32 = cols[2].parse().unwrap_or(99.0);
            assert!((-4.0..=4.0).contains(&v), "bad valence {line:?}");
        }
    }

    #[test]
    fn lookups_handle_accents_elongation_phrases_and_emoji() {
        let lex = &*LEXICONS;
        let v = |e: Option<f32>| e.unwrap_or(0.0);
        assert!(v(lex.en.word("good")) > 0.0);
        assert!(v(lex.en.word("goooood")) > 0.0);
        assert_eq!(
            lex.fr.word("salle"),
            None,
            "a double letter is no elongation"
        );
        assert!(v(lex.fr.word("génial")) > 0.0);
        assert!(v(lex.fr.word("genial")) > 0.0);
        assert!(v(lex.fr.word("catastrophiques")) < 0.0);
        assert!(v(lex.fr.word("menacées")) < 0.0);
        assert!(v(lex.en.phrase(&["fed", "up"])) < 0.0);
        assert!(lex.emoji.get("👍").is_some_and(|v| *v > 0.0));
        assert!(lex.emoji.get("😡").is_some_and(|v| *v < 0.0));
        assert!(lex.emoticon(":)").is_some_and(|v| v > 0.0));
        assert!(lex.emoticon(":(").is_some_and(|v| v < 0.0));
        assert!(lex.emoticon(":D").is_some_and(|v| v > 0.0));
    }
}
