//! Tweet-aware tokenizer shared by the scorer, the language detector and the
//! question detector: links, @mentions, hashtags (camelCase split), emojis,
//! emoticons, French elision (l', d', j', qu', n' ...), elongations
//! ("soooo") and ALL-CAPS emphasis.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Letters/digits (apostrophes and inner hyphens kept: "don't", "peut-être").
    Word,
    /// A French elided article or pronoun, kept with its apostrophe: "l'", "n'", "qu'".
    Elided,
    /// One pictographic character (variation selectors and skin tones dropped).
    Emoji,
    /// An ASCII emoticon such as ":)" or ":-(" (recognised by the caller's table).
    Emoticon,
    /// One punctuation mark among `! ? . , ; :` and the ellipsis.
    Punct,
    /// A link ("http…", "www.…").
    Url,
    /// An @mention.
    Mention,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    /// Lower-cased text ("!" for punctuation, the emoji itself for emojis).
    pub text: String,
    /// Written in capitals in the source (two letters or more).
    pub caps: bool,
    /// A letter repeated three times or more ("soooo").
    pub elongated: bool,
    /// Came from a #hashtag.
    pub hashtag: bool,
}

impl Token {
    fn new(kind: Kind, text: String) -> Token {
        Token {
            kind,
            text,
            caps: false,
            elongated: false,
            hashtag: false,
        }
    }

    pub fn is_word(&self) -> bool {
        matches!(self.kind, Kind::Word | Kind::Elided)
    }

    /// Sentence boundary.
    pub fn is_boundary(&self) -> bool {
        self.kind == Kind::Punct && matches!(self.text.as_str(), "." | "!" | "?" | ";" | "…")
    }

    /// Sentence boundary or comma: negation and boosters do not reach across it.
    pub fn is_clause_end(&self) -> bool {
        self.kind == Kind::Punct && matches!(self.text.as_str(), "." | "!" | "?" | ";" | "…" | ",")
    }
}

/// French (and a few other) elided forms recognised before an apostrophe.
const ELIDED: [&str; 13] = [
    "l", "d", "j", "qu", "n", "s", "c", "m", "t", "jusqu", "lorsqu", "puisqu", "quoiqu",
];

/// Splits `text` into tokens. `is_emoticon` says whether a whitespace-separated
/// chunk is an emoticon (the caller owns the table).
pub(crate) fn tokenize(text: &str, is_emoticon: &dyn Fn(&str) -> bool) -> Vec<Token> {
    let mut out = Vec::new();
    for chunk in text.split_whitespace() {
        let lower = chunk.to_lowercase();
        if lower.starts_with("http") || lower.starts_with("www.") {
            out.push(Token::new(Kind::Url, String::new()));
            continue;
        }
        let trimmed = chunk.trim_end_matches([',', '.']);
        if !trimmed.is_empty()
            && !trimmed.chars().all(|c| c.is_alphanumeric())
            && is_emoticon(trimmed)
        {
            out.push(Token::new(Kind::Emoticon, trimmed.to_string()));
            continue;
        }
        scan_chunk(chunk, &mut out);
    }
    out
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '’' || c == 'ʼ'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Zero-width joiners, variation selectors and skin-tone modifiers: parts of
/// an emoji sequence that carry no meaning of their own here.
fn is_emoji_filler(c: char) -> bool {
    matches!(
        c,
        '\u{200D}' | '\u{FE0E}' | '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}' | '\u{20E3}'
    )
}

fn is_pictograph(c: char) -> bool {
    !c.is_alphanumeric()
        && !c.is_whitespace()
        && (matches!(c,
            '\u{2190}'..='\u{21FF}' | '\u{2300}'..='\u{23FF}' | '\u{2460}'..='\u{27BF}'
            | '\u{2900}'..='\u{297F}' | '\u{2B00}'..='\u{2BFF}' | '\u{3030}' | '\u{303D}'
            | '\u{1F000}'..='\u{1FAFF}'))
}

fn scan_chunk(chunk: &str, out: &mut Vec<Token>) {
    let chars: Vec<char> = chunk.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '@'
            && chars
                .get(i + 1)
                .is_some_and(|n| is_word_char(*n) || *n == '_')
        {
            i += 1;
            while i < chars.len() && (is_word_char(chars[i]) || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::new(Kind::Mention, String::new()));
            continue;
        }
        if c == '#' && chars.get(i + 1).is_some_and(|n| is_word_char(*n)) {
            let start = i + 1;
            i = start;
            while i < chars.len() && (is_word_char(chars[i]) || chars[i] == '_') {
                i += 1;
            }
            let tag: String = chars[start..i].iter().collect();
            for part in split_hashtag(&tag) {
                let mut t = word_token(&part);
                t.hashtag = true;
                out.push(t);
            }
            continue;
        }
        if is_word_char(c) {
            let start = i;
            while i < chars.len() {
                let ch = chars[i];
                let joins = (is_apostrophe(ch) || ch == '-')
                    && chars.get(i + 1).is_some_and(|n| is_word_char(*n));
                if is_word_char(ch) || (joins && i > start) {
                    i += 1;
                } else {
                    break;
                }
            }
            let word: String = chars[start..i].iter().collect();
            push_word(&word, out);
            continue;
        }
        if is_emoji_filler(c) {
            i += 1;
            continue;
        }
        if is_pictograph(c) {
            out.push(Token::new(Kind::Emoji, c.to_string()));
            i += 1;
            continue;
        }
        match c {
            '!' | '?' | '.' | ',' | ';' | ':' | '…' => {
                out.push(Token::new(Kind::Punct, c.to_string()));
            }
            '¡' => out.push(Token::new(Kind::Punct, "!".into())),
            '¿' => out.push(Token::new(Kind::Punct, "?".into())),
            _ => {}
        }
        i += 1;
    }
}

/// Splits a word on a leading elision ("l'écologie" → "l'", "écologie").
fn push_word(word: &str, out: &mut Vec<Token>) {
    if let Some(pos) = word.find(is_apostrophe) {
        let (head, tail) = word.split_at(pos);
        let head_lower = head.to_lowercase();
        let rest: String = tail.chars().skip(1).collect();
        if ELIDED.contains(&head_lower.as_str()) && !rest.is_empty() {
            out.push(Token::new(Kind::Elided, format!("{head_lower}'")));
            push_word(&rest, out);
            return;
        }
    }
    out.push(word_token(word));
}

fn word_token(word: &str) -> Token {
    let normalized: String = word
        .chars()
        .map(|c| if is_apostrophe(c) { '\'' } else { c })
        .collect();
    let letters: Vec<char> = normalized.chars().filter(|c| c.is_alphabetic()).collect();
    let caps = letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase());
    let text = normalized.to_lowercase();
    let elongated = has_run(&text, 3);
    Token {
        kind: Kind::Word,
        text,
        caps,
        elongated,
        hashtag: false,
    }
}

/// True when some letter repeats `n` times in a row.
pub(crate) fn has_run(s: &str, n: usize) -> bool {
    let mut prev = None;
    let mut run = 0;
    for c in s.chars() {
        if Some(c) == prev && c.is_alphabetic() {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            prev = Some(c);
            run = 1;
        }
    }
    false
}

/// Collapses runs of a letter longer than `keep` to `keep` ("soooo" → "soo" or "so").
pub(crate) fn collapse_runs(s: &str, keep: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    let mut run = 0;
    for c in s.chars() {
        if Some(c) == prev {
            run += 1;
        } else {
            prev = Some(c);
            run = 1;
        }
        if run <= keep || !c.is_alphabetic() {
            out.push(c);
        }
    }
    out
}

/// Splits "EpicFail" / "epic_fail" into its words; a tag without inner
/// capitals stays whole.
fn split_hashtag(tag: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for piece in tag.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<char> = piece.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let boundary = chars[i].is_uppercase()
                && (chars[i - 1].is_lowercase()
                    || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                        && chars[i - 1].is_uppercase());
            if boundary {
                parts.push(chars[start..i].iter().collect());
                start = i;
            }
        }
        parts.push(chars[start..].iter().collect());
    }
    parts
}

/// Removes French/Latin diacritics ("évidemment" → "evidemment").
pub(crate) fn fold_accents(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' => out.push('a'),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'î' | 'ï' | 'í' | 'ì' => out.push('i'),
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => out.push('o'),
            'ù' | 'û' | 'ü' | 'ú' => out.push('u'),
            'ç' => out.push('c'),
            'ñ' => out.push('n'),
            'ÿ' => out.push('y'),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            'À' | 'Â' | 'Ä' | 'Á' => out.push('A'),
            'É' | 'È' | 'Ê' | 'Ë' => out.push('E'),
            'Î' | 'Ï' => out.push('I'),
            'Ô' | 'Ö' => out.push('O'),
            'Ù' | 'Û' | 'Ü' => out.push('U'),
            'Ç' => out.push('C'),
            'Œ' => out.push_str("OE"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Token> {
        tokenize(text, &|s| s == ":)" || s == ":-(")
    }

    fn texts(text: &str) -> Vec<String> {
        toks(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn links_mentions_and_hashtags_are_recognised() {
        let t = toks("@user look http://x.y #EpicFail www.a.b");
        let kinds: Vec<Kind> = t.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Mention,
                Kind::Word,
                Kind::Url,
                Kind::Word,
                Kind::Word,
                Kind::Url
            ]
        );
        assert_eq!(t[3].text, "epic");
        assert_eq!(t[4].text, "fail");
        assert!(t[4].hashtag);
    }

    #[test]
    fn french_elision_is_split_and_english_contractions_kept() {
        assert_eq!(
            texts("L'équipe n'aime pas qu’il don't aujourd'hui"),
            vec![
                "l'",
                "équipe",
                "n'",
                "aime",
                "pas",
                "qu'",
                "il",
                "don't",
                "aujourd'hui"
            ]
        );
    }

    #[test]
    fn emojis_emoticons_and_punctuation_are_tokens() {
        let t = toks("super😀👍🏽 :) bof:-( !!");
        let kinds: Vec<Kind> = t.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Word,
                Kind::Emoji,
                Kind::Emoji,
                Kind::Emoticon,
                Kind::Word,
                Kind::Punct,
                Kind::Punct,
                Kind::Punct
            ]
        );
        assert_eq!(t[2].text, "👍");
    }

    #[test]
    fn caps_and_elongation_are_flagged() {
        let t = toks("SOOOO good");
        assert!(t[0].caps && t[0].elongated);
        assert!(!t[1].caps && !t[1].elongated);
        assert_eq!(collapse_runs("soooo", 2), "soo");
        assert_eq!(collapse_runs("soooo", 1), "so");
    }

    #[test]
    fn accents_fold() {
        assert_eq!(fold_accents("Évidemment ça cœur"), "Evidemment ca coeur");
    }
}
