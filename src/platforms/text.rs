//! Counting and validating post text against each network's real length rules.
//!
//! Sources: `shared/platforms.md` (sections 1 Mastodon, 2 Bluesky, 3 X, 4 LinkedIn, 5 Facebook,
//! 6 Instagram, 7 Threads, 8 Telegram, 9 Discord and the comparison table in section 11).
//! Every function here is pure (no I/O, no global state).

use linkify::{LinkFinder, LinkKind};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{EmojiStatus, UnicodeEmoji};
use unicode_segmentation::UnicodeSegmentation;

use super::Platform;

/// What a text measures on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReport {
    /// Size of the text, in the network's own unit.
    pub used: usize,
    /// The network's limit, in the same unit.
    pub limit: usize,
    /// "graphemes" | "weighted characters" | "characters" | "UTF-16 code units" | "bytes"
    pub unit: &'static str,
    /// Human-readable problems; empty when the text can be posted.
    pub problems: Vec<String>,
}

impl TextReport {
    /// True when the text can be posted as it is.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Characters a URL counts for on Mastodon (`characters_reserved_per_url`) and X (t.co length).
pub(crate) const URL_WEIGHT: usize = 23;
/// Bluesky's second limit: the lexicon's `maxLength` of the post text, in UTF-8 bytes.
pub(crate) const BLUESKY_MAX_BYTES: usize = 3_000;
/// Threads rejects posts with more links than this.
pub(crate) const THREADS_MAX_LINKS: usize = 5;

const UNIT_GRAPHEMES: &str = "graphemes";
const UNIT_WEIGHTED: &str = "weighted characters";
const UNIT_CHARACTERS: &str = "characters";
const UNIT_UTF16: &str = "UTF-16 code units";
const UNIT_BYTES: &str = "bytes";

/// Default limit for the network (Mastodon 500, etc.).
pub fn default_limit(platform: Platform) -> usize {
    match platform {
        Platform::Mastodon => 500,
        Platform::Bluesky => 300,
        Platform::X => 280,
        Platform::Threads => 500,
        Platform::Linkedin => 3_000,
        Platform::Facebook => 63_206,
        Platform::Instagram => 2_200,
        Platform::Telegram => 4_096,
        Platform::Discord => 2_000,
        Platform::Webhook | Platform::Sandbox => 100_000,
    }
}

/// Measure and validate. `limit_override` replaces the default limit (a Mastodon instance's max_characters).
pub fn check(platform: Platform, text: &str, limit_override: Option<usize>) -> TextReport {
    let limit = limit_override.unwrap_or_else(|| default_limit(platform));
    let (used, unit) = measure(platform, text);
    let mut problems = Vec::new();

    if text.trim().is_empty() {
        problems.push("text is empty".to_string());
    }
    if used > limit {
        problems.push(format!(
            "too long for {}: {used} {unit}, the limit is {limit}",
            platform.as_str()
        ));
    }
    match platform {
        Platform::Bluesky => {
            let bytes = text.len();
            if bytes > BLUESKY_MAX_BYTES {
                problems.push(format!(
                    "too long for bluesky: {bytes} bytes, the limit is {BLUESKY_MAX_BYTES} bytes"
                ));
            }
        }
        Platform::Threads => {
            let links = count_links(text);
            if links > THREADS_MAX_LINKS {
                problems.push(format!(
                    "too many links for threads: {links}, the limit is {THREADS_MAX_LINKS}"
                ));
            }
        }
        // Instagram's image requirement is a media rule, checked with the
        // whole variant (`statements::validate_content`).
        _ => {}
    }

    TextReport {
        used,
        limit,
        unit,
        problems,
    }
}

/// The size of `text` on `platform` and the unit it is expressed in.
pub(crate) fn measure(platform: Platform, text: &str) -> (usize, &'static str) {
    match platform {
        Platform::Mastodon => (mastodon_length(text), UNIT_GRAPHEMES),
        // Bluesky: graphemes here; the 3,000-byte limit is checked separately in `check`.
        Platform::Bluesky => (grapheme_count(text), UNIT_GRAPHEMES),
        Platform::X => (x_weighted_length(text), UNIT_WEIGHTED),
        Platform::Threads => (threads_length(text), UNIT_WEIGHTED),
        // LinkedIn (3,000), Facebook (63,206) and Instagram (2,200) only say "characters"
        // (platforms.md marks them [lib]) and Facebook "does no special URL or emoji counting":
        // we count what a person sees as one character, i.e. grapheme clusters.
        Platform::Linkedin | Platform::Facebook | Platform::Instagram => {
            (grapheme_count(text), UNIT_GRAPHEMES)
        }
        // Telegram: "1–4096 characters after entity parsing", offsets in UTF-16 code units.
        // Herald sends plain text (no parse_mode), so nothing is stripped before counting.
        Platform::Telegram => (utf16_length(text), UNIT_UTF16),
        // Discord: platforms.md only says "content ≤2000 chars" and does not confirm the unit.
        // Unconfirmed: we count Unicode scalar values (code points), which is never fewer than
        // graphemes, so a text that passes here is not too long for a grapheme counter either.
        Platform::Discord => (text.chars().count(), UNIT_CHARACTERS),
        Platform::Webhook | Platform::Sandbox => (text.len(), UNIT_BYTES),
    }
}

/// Number of extended grapheme clusters.
pub(crate) fn grapheme_count(text: &str) -> usize {
    text.graphemes(true).count()
}

/// Number of UTF-16 code units (a character outside the BMP takes 2).
pub(crate) fn utf16_length(text: &str) -> usize {
    text.encode_utf16().count()
}

// ---------------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------------

fn has_http_scheme(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Byte ranges of http(s) URLs written with their scheme (how Mastodon finds URLs: its
/// extractor runs with `extract_url_without_protocol: false`).
pub(crate) fn http_url_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    finder.url_must_have_scheme(true);
    finder
        .links(text)
        .filter(|link| has_http_scheme(link.as_str()))
        .map(|link| (link.start(), link.end()))
        .collect()
}

/// Byte ranges of URLs with an http(s) scheme or no scheme at all (`example.org/x`), the way
/// twitter-text also links bare domains. Other schemes (`ftp://`) are left as plain text.
pub(crate) fn web_link_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    finder.url_must_have_scheme(false);
    finder
        .links(text)
        .filter(|link| has_http_scheme(link.as_str()) || !link.as_str().contains("://"))
        .map(|link| (link.start(), link.end()))
        .collect()
}

/// Number of links a network that detects bare domains would see.
pub(crate) fn count_links(text: &str) -> usize {
    web_link_ranges(text).len()
}

// ---------------------------------------------------------------------------------------------
// Mastodon
// ---------------------------------------------------------------------------------------------

/// Mastodon's `StatusLengthValidator`: grapheme clusters after every http(s) URL is replaced by
/// 23 characters and every remote mention `@user@domain` by `@user`.
/// (The server also counts the content warning, `spoiler_text`; Herald does not send one.)
pub(crate) fn mastodon_length(text: &str) -> usize {
    let placeholder = "x".repeat(URL_WEIGHT);
    let mut without_urls = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in http_url_ranges(text) {
        without_urls.push_str(&text[last..start]);
        without_urls.push_str(&placeholder);
        last = end;
    }
    without_urls.push_str(&text[last..]);
    grapheme_count(&shorten_remote_mentions(&without_urls))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Length in bytes of the longest prefix of `s` matching `W+([.-]+W+)*`, where `W` is `word`.
fn dotted_run(s: &str, word: fn(char) -> bool) -> usize {
    let mut end = 0;
    let mut chars = s.char_indices().peekable();
    // The first run of word characters.
    while let Some(&(i, c)) = chars.peek() {
        if !word(c) {
            break;
        }
        end = i + c.len_utf8();
        chars.next();
    }
    if end == 0 {
        return 0;
    }
    // Then any number of `[.-]+` separators, each followed by at least one word character.
    loop {
        let mut in_sep = false;
        let mut tentative = end;
        let mut extended = false;
        while let Some(&(i, c)) = chars.peek() {
            if c == '.' || c == '-' {
                if extended {
                    break;
                }
                in_sep = true;
            } else if word(c) && in_sep {
                extended = true;
                tentative = i + c.len_utf8();
            } else {
                break;
            }
            chars.next();
        }
        if !extended {
            return end;
        }
        end = tentative;
    }
}

/// Rewrites `@user@domain` to `@user`, following Mastodon's `Account::MENTION_RE`:
/// `(?<![=/[:word:]])@([a-z0-9_]+([.-]+[a-z0-9_]+)*)(?:@[[:word:]]+([.-]+[[:word:]]+)*)?` (case-insensitive).
pub(crate) fn shorten_remote_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<char> = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().unwrap_or_default();
        let starts_mention =
            c == '@' && !previous.is_some_and(|p| p == '=' || p == '/' || is_word_char(p));
        if starts_mention {
            let user_len = dotted_run(&rest[1..], is_username_char);
            let after_user = &rest[1 + user_len..];
            if user_len > 0 && after_user.starts_with('@') {
                let domain_len = dotted_run(&after_user[1..], is_word_char);
                if domain_len > 0 {
                    out.push_str(&rest[..1 + user_len]);
                    i += 1 + user_len + 1 + domain_len;
                    previous = after_user[..1 + domain_len].chars().next_back();
                    continue;
                }
            }
        }
        out.push(c);
        previous = Some(c);
        i += c.len_utf8();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Emoji (X and Threads)
// ---------------------------------------------------------------------------------------------

fn is_regional_indicator(c: char) -> bool {
    matches!(c, '\u{1F1E6}'..='\u{1F1FF}')
}

fn is_skin_tone(c: char) -> bool {
    matches!(c, '\u{1F3FB}'..='\u{1F3FF}')
}

fn has_emoji_presentation(c: char) -> bool {
    matches!(
        c.emoji_status(),
        EmojiStatus::EmojiPresentation
            | EmojiStatus::EmojiPresentationAndModifierBase
            | EmojiStatus::EmojiPresentationAndEmojiComponent
            | EmojiStatus::EmojiPresentationAndModifierAndEmojiComponent
    )
}

/// True when the grapheme cluster is displayed as an emoji: an emoji-presentation character,
/// a text-default emoji followed by VS16 (❤️), a skin-tone or ZWJ sequence, a flag (regional
/// indicator pair, or tag sequence) or a keycap (1️⃣). A text-default character on its own
/// (`©`, `1`, `#`) is not an emoji, as in Twemoji, which twitter-text uses.
pub(crate) fn is_emoji_grapheme(grapheme: &str) -> bool {
    let Some(first) = grapheme.chars().next() else {
        return false;
    };
    if is_regional_indicator(first) {
        return true;
    }
    if matches!(first, '0'..='9' | '#' | '*') {
        return grapheme.contains('\u{20E3}');
    }
    if !first.is_emoji_char() {
        return false;
    }
    has_emoji_presentation(first)
        || grapheme
            .chars()
            .skip(1)
            .any(|c| c == '\u{FE0F}' || c == '\u{200D}' || is_skin_tone(c))
}

// ---------------------------------------------------------------------------------------------
// X (twitter-text v3)
// ---------------------------------------------------------------------------------------------

/// twitter-text v3 weight of one code point outside an emoji sequence.
pub(crate) fn x_char_weight(c: char) -> usize {
    match c {
        '\u{0000}'..='\u{10FF}'
        | '\u{2000}'..='\u{200D}'
        | '\u{2010}'..='\u{201F}'
        | '\u{2032}'..='\u{2037}' => 1,
        _ => 2,
    }
}

/// Weight of a run of text without URLs: each emoji sequence weighs 2; every other code point
/// weighs by its range. Code points that cannot belong to an emoji sequence but were pulled
/// into the cluster (a combining mark after an emoji) keep their own weight, as twitter-text
/// weighs them after its emoji match ends.
fn x_weight_of_plain(text: &str) -> usize {
    text.graphemes(true)
        .map(|g| {
            if is_emoji_grapheme(g) {
                2 + g
                    .chars()
                    .filter(|&c| !c.is_emoji_char_or_emoji_component())
                    .map(x_char_weight)
                    .sum::<usize>()
            } else {
                g.chars().map(x_char_weight).sum()
            }
        })
        .sum()
}

/// X's weighted length (twitter-text v3, in whole units: its 100-unit scale divided out).
/// The text is NFC-normalised, every URL counts 23, emoji sequences 2, and code points in
/// U+0000–U+10FF, U+2000–U+200D, U+2010–U+201F, U+2032–U+2037 weigh 1, others 2.
pub(crate) fn x_weighted_length(text: &str) -> usize {
    let normalized: String = text.nfc().collect();
    let mut total = 0;
    let mut last = 0;
    for (start, end) in web_link_ranges(&normalized) {
        total += x_weight_of_plain(&normalized[last..start]) + URL_WEIGHT;
        last = end;
    }
    total + x_weight_of_plain(&normalized[last..])
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

/// Threads: 500 "characters" with emoji counted as their UTF-8 byte length (platforms.md §7.2,
/// marked [doc]). Each grapheme counts 1, except an emoji grapheme, which counts its UTF-8
/// bytes (😀 = 4, 👍🏽 = 8, a ZWJ family = 25). URLs count in full. Which characters Meta treats
/// as "emoji" is not documented; we use the same emoji detection as for X.
pub(crate) fn threads_length(text: &str) -> usize {
    text.graphemes(true)
        .map(|g| if is_emoji_grapheme(g) { g.len() } else { 1 })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
    const THUMBS_MEDIUM: &str = "👍🏽";
    const FLAG_FR: &str = "🇫🇷";
    const KEYCAP_ONE: &str = "1\u{FE0F}\u{20E3}";
    const RED_HEART: &str = "\u{2764}\u{FE0F}";
    const E_ACUTE_DECOMPOSED: &str = "e\u{0301}";
    const LONG_URL: &str = "https://example.org/crisis/updates/2026/statement-on-the-flooding-in-the-northern-districts?lang=en&ref=herald";

    const ALL: [Platform; 11] = Platform::ALL;

    fn is_too_long(report: &TextReport) -> bool {
        report.problems.iter().any(|p| p.starts_with("too long"))
    }

    // --- limits and boundaries ----------------------------------------------------------------

    #[test]
    fn default_limits_match_the_documented_numbers() {
        let expected = [
            500, 300, 280, 500, 3_000, 63_206, 2_200, 4_096, 2_000, 100_000, 100_000,
        ];
        for (platform, limit) in ALL.into_iter().zip(expected) {
            assert_eq!(default_limit(platform), limit, "{platform:?}");
        }
    }

    #[test]
    fn every_network_accepts_a_text_exactly_at_its_limit_and_rejects_one_more() {
        for platform in ALL {
            let limit = default_limit(platform);
            let at_limit = "a".repeat(limit);
            let report = check(platform, &at_limit, None);
            assert_eq!(report.used, limit, "{platform:?}");
            assert_eq!(report.limit, limit, "{platform:?}");
            assert!(!is_too_long(&report), "{platform:?}: {:?}", report.problems);

            let over = "a".repeat(limit + 1);
            let report = check(platform, &over, None);
            assert_eq!(report.used, limit + 1, "{platform:?}");
            assert!(is_too_long(&report), "{platform:?}");
            assert!(!report.ok(), "{platform:?}");
        }
    }

    #[test]
    fn every_network_is_ok_at_the_limit() {
        for platform in ALL {
            let report = check(platform, &"a".repeat(default_limit(platform)), None);
            assert!(report.ok(), "{platform:?}: {:?}", report.problems);
        }
    }

    #[test]
    fn the_over_limit_message_names_network_count_unit_and_limit() {
        let report = check(Platform::Mastodon, &"a".repeat(501), None);
        assert_eq!(
            report.problems,
            vec!["too long for mastodon: 501 graphemes, the limit is 500".to_string()]
        );
        let report = check(Platform::X, &"a".repeat(281), None);
        assert_eq!(
            report.problems,
            vec!["too long for x: 281 weighted characters, the limit is 280".to_string()]
        );
    }

    #[test]
    fn units_are_reported_per_network() {
        let unit = |p| check(p, "hello", None).unit;
        assert_eq!(unit(Platform::Mastodon), "graphemes");
        assert_eq!(unit(Platform::Bluesky), "graphemes");
        assert_eq!(unit(Platform::X), "weighted characters");
        assert_eq!(unit(Platform::Threads), "weighted characters");
        assert_eq!(unit(Platform::Linkedin), "graphemes");
        assert_eq!(unit(Platform::Telegram), "UTF-16 code units");
        assert_eq!(unit(Platform::Discord), "characters");
        assert_eq!(unit(Platform::Webhook), "bytes");
        assert_eq!(unit(Platform::Sandbox), "bytes");
    }

    #[test]
    fn a_mastodon_instance_limit_overrides_the_default() {
        let text = "a".repeat(501);
        let report = check(Platform::Mastodon, &text, Some(5_000));
        assert_eq!(report.limit, 5_000);
        assert!(report.ok());
        let report = check(Platform::Mastodon, "abcdef", Some(5));
        assert_eq!(report.limit, 5);
        assert!(is_too_long(&report));
    }

    // --- empty text ---------------------------------------------------------------------------

    #[test]
    fn empty_or_whitespace_only_text_is_rejected_on_every_network() {
        for platform in ALL {
            for text in ["", "   ", "\n\t \u{3000}"] {
                let report = check(platform, text, None);
                assert!(
                    report.problems.contains(&"text is empty".to_string()),
                    "{platform:?} {text:?}"
                );
                assert!(!report.ok());
            }
        }
    }

    #[test]
    fn ordinary_text_is_not_reported_empty() {
        let report = check(Platform::Telegram, "  Shelter open at 5 Main St.  ", None);
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.used, 30);
    }

    // --- instagram ----------------------------------------------------------------------------

    #[test]
    fn instagram_captions_are_measured_like_any_text() {
        assert!(check(Platform::Instagram, "Short caption", None).ok());
        let report = check(Platform::Instagram, &"a".repeat(2_201), None);
        assert_eq!(report.problems.len(), 1);
    }

    // --- grapheme networks: emoji, combining marks ----------------------------------------------

    #[test]
    fn a_zwj_family_and_a_skin_tone_emoji_are_one_grapheme_each_on_mastodon_and_bluesky() {
        let text = format!("{FAMILY}{THUMBS_MEDIUM}{FLAG_FR}{KEYCAP_ONE}{RED_HEART}");
        assert_eq!(check(Platform::Mastodon, &text, None).used, 5);
        assert_eq!(check(Platform::Bluesky, &text, None).used, 5);
        assert_eq!(check(Platform::Linkedin, &text, None).used, 5);
    }

    #[test]
    fn e_with_a_combining_acute_is_one_grapheme() {
        assert_eq!(grapheme_count(E_ACUTE_DECOMPOSED), 1);
        assert_eq!(check(Platform::Mastodon, E_ACUTE_DECOMPOSED, None).used, 1);
        assert_eq!(check(Platform::Facebook, E_ACUTE_DECOMPOSED, None).used, 1);
    }

    #[test]
    fn mastodon_accepts_500_family_emoji_though_they_are_thousands_of_bytes() {
        let text = FAMILY.repeat(500);
        let report = check(Platform::Mastodon, &text, None);
        assert_eq!(report.used, 500);
        assert!(report.ok());
        assert!(is_too_long(&check(
            Platform::Mastodon,
            &FAMILY.repeat(501),
            None
        )));
    }

    // --- Mastodon URLs and mentions -------------------------------------------------------------

    #[test]
    fn a_long_url_counts_23_on_mastodon() {
        assert!(LONG_URL.len() > 100);
        let report = check(Platform::Mastodon, LONG_URL, None);
        assert_eq!(report.used, 23);
        let text = format!("Update: {LONG_URL} (more soon).");
        assert_eq!(
            mastodon_length(&text),
            "Update: ".len() + 23 + " (more soon).".len()
        );
    }

    #[test]
    fn mastodon_only_shortens_http_urls_written_with_their_scheme() {
        assert_eq!(mastodon_length("example.org/a-very-long-path-here"), 33);
        assert_eq!(mastodon_length("ftp://example.org/a-very-long-path"), 34);
        assert_eq!(mastodon_length("HTTPS://EXAMPLE.ORG/A-VERY-LONG-PATH"), 23);
    }

    #[test]
    fn a_url_at_the_mastodon_boundary_counts_as_23() {
        // 476 letters + a space + the URL (23) = 500.
        let text = format!("{} {LONG_URL}", "a".repeat(476));
        assert_eq!(check(Platform::Mastodon, &text, None).used, 500);
        assert!(check(Platform::Mastodon, &text, None).ok());
        let text = format!("{} {LONG_URL}", "a".repeat(477));
        assert!(is_too_long(&check(Platform::Mastodon, &text, None)));
    }

    #[test]
    fn a_remote_mention_counts_only_its_local_part_on_mastodon() {
        assert_eq!(mastodon_length("@alice@example.social"), "@alice".len());
        assert_eq!(
            mastodon_length("cc @alice@social.example.org and @bob"),
            "cc @alice and @bob".len()
        );
        assert_eq!(
            shorten_remote_mentions("Thanks @first.last@mastodon.example-host.net!"),
            "Thanks @first.last!"
        );
    }

    #[test]
    fn an_email_address_is_not_a_mastodon_mention() {
        assert_eq!(
            mastodon_length("write to press@example.org"),
            "write to press@example.org".len()
        );
    }

    #[test]
    fn a_mention_inside_a_url_is_counted_as_part_of_the_url() {
        assert_eq!(
            mastodon_length("https://mastodon.social/@alice@example.org"),
            23
        );
    }

    // --- Bluesky ------------------------------------------------------------------------------

    #[test]
    fn a_long_url_counts_in_full_on_bluesky() {
        let report = check(Platform::Bluesky, LONG_URL, None);
        assert_eq!(report.used, LONG_URL.chars().count());
        let text = format!("{} {LONG_URL}", "a".repeat(200));
        assert!(is_too_long(&check(Platform::Bluesky, &text, None)));
    }

    #[test]
    fn bluesky_rejects_300_graphemes_that_exceed_3000_bytes() {
        // Each family is one grapheme of 25 bytes.
        let text = FAMILY.repeat(300);
        assert_eq!(text.len(), 7_500);
        let report = check(Platform::Bluesky, &text, None);
        assert_eq!(report.used, 300);
        assert_eq!(
            report.problems,
            vec!["too long for bluesky: 7500 bytes, the limit is 3000 bytes".to_string()]
        );
    }

    #[test]
    fn bluesky_accepts_exactly_3000_bytes_and_rejects_3001() {
        let ten_bytes = "\u{1F44D}\u{1F3FD}\u{0301}"; // 4 + 4 + 2 bytes, one grapheme
        let eleven_bytes = "\u{1F44D}\u{1F3FD}\u{20D0}"; // 4 + 4 + 3 bytes, one grapheme
        assert_eq!((ten_bytes.len(), grapheme_count(ten_bytes)), (10, 1));
        assert_eq!((eleven_bytes.len(), grapheme_count(eleven_bytes)), (11, 1));

        let text = ten_bytes.repeat(300);
        assert_eq!(text.len(), 3_000);
        assert!(check(Platform::Bluesky, &text, None).ok());

        let text = ten_bytes.repeat(299) + eleven_bytes;
        assert_eq!(text.len(), 3_001);
        let report = check(Platform::Bluesky, &text, None);
        assert_eq!(report.used, 300);
        assert_eq!(
            report.problems,
            vec!["too long for bluesky: 3001 bytes, the limit is 3000 bytes".to_string()]
        );
    }

    // --- X --------------------------------------------------------------------------------------

    #[test]
    fn x_accepts_140_cjk_characters_and_rejects_141() {
        let report = check(Platform::X, &"漢".repeat(140), None);
        assert_eq!(report.used, 280);
        assert!(report.ok());
        let report = check(Platform::X, &"漢".repeat(141), None);
        assert_eq!(report.used, 282);
        assert!(is_too_long(&report));
    }

    #[test]
    fn x_weighs_latin_and_general_punctuation_as_1() {
        assert_eq!(x_weighted_length("abc"), 3);
        assert_eq!(x_weighted_length("Привет"), 6); // Cyrillic is below U+10FF
        assert_eq!(x_weighted_length("\u{2014}\u{201C}\u{2032}"), 3); // em dash, quote, prime
        assert_eq!(x_weighted_length("\u{2026}"), 2); // ellipsis U+2026 is outside the ranges
        assert_eq!(x_weighted_length("한"), 2);
    }

    #[test]
    fn x_counts_each_emoji_sequence_as_2() {
        assert_eq!(x_weighted_length("😀"), 2);
        assert_eq!(x_weighted_length(FAMILY), 2);
        assert_eq!(x_weighted_length(THUMBS_MEDIUM), 2);
        assert_eq!(x_weighted_length(FLAG_FR), 2);
        assert_eq!(x_weighted_length(KEYCAP_ONE), 2);
        assert_eq!(x_weighted_length(RED_HEART), 2);
        let england = "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
        assert_eq!(x_weighted_length(england), 2);
        assert_eq!(
            x_weighted_length(&format!("{FAMILY}{THUMBS_MEDIUM}{FLAG_FR}")),
            6
        );
    }

    #[test]
    fn x_does_not_treat_plain_digits_or_copyright_as_emoji() {
        assert_eq!(x_weighted_length("2026"), 4);
        assert_eq!(x_weighted_length("©"), 1);
        assert_eq!(x_weighted_length("©\u{FE0F}"), 2);
    }

    #[test]
    fn x_accepts_140_family_emoji_and_rejects_141() {
        assert!(check(Platform::X, &FAMILY.repeat(140), None).ok());
        assert!(is_too_long(&check(Platform::X, &FAMILY.repeat(141), None)));
    }

    #[test]
    fn x_normalises_to_nfc_before_counting() {
        // Decomposed é is two code points of weight 1 each; NFC makes it one.
        assert_eq!(x_weighted_length(E_ACUTE_DECOMPOSED), 1);
        let decomposed = E_ACUTE_DECOMPOSED.repeat(280);
        assert_eq!(decomposed.chars().count(), 560);
        assert!(check(Platform::X, &decomposed, None).ok());
        // Decomposed Hangul jamo compose to one syllable weighing 2, not 3 × 1.
        assert_eq!(x_weighted_length("\u{1112}\u{1161}\u{11AB}"), 2);
    }

    #[test]
    fn a_long_url_counts_23_on_x() {
        assert_eq!(x_weighted_length(LONG_URL), 23);
        assert_eq!(x_weighted_length(&format!("See {LONG_URL}.")), 4 + 23 + 1);
        assert_eq!(x_weighted_length("redcross.org/appeal"), 23);
        let text = format!("{} {LONG_URL}", "a".repeat(256));
        assert_eq!(check(Platform::X, &text, None).used, 280);
        assert!(check(Platform::X, &text, None).ok());
        let text = format!("{} {LONG_URL}", "a".repeat(257));
        assert!(is_too_long(&check(Platform::X, &text, None)));
    }

    // --- Threads --------------------------------------------------------------------------------

    #[test]
    fn threads_counts_emoji_as_their_utf8_bytes() {
        assert_eq!(threads_length("hi"), 2);
        assert_eq!(threads_length("😀"), 4);
        assert_eq!(threads_length(THUMBS_MEDIUM), 8);
        assert_eq!(threads_length(FAMILY), 25);
        assert_eq!(threads_length(E_ACUTE_DECOMPOSED), 1);
        assert_eq!(threads_length("漢字"), 2);
    }

    #[test]
    fn threads_rejects_text_pushed_over_500_by_emoji() {
        let text = format!("{}😀", "a".repeat(496));
        assert_eq!(check(Platform::Threads, &text, None).used, 500);
        assert!(check(Platform::Threads, &text, None).ok());
        let text = format!("{}😀", "a".repeat(497));
        assert!(is_too_long(&check(Platform::Threads, &text, None)));
    }

    #[test]
    fn threads_rejects_more_than_five_links() {
        let five = (1..=5)
            .map(|i| format!("https://example.org/{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(check(Platform::Threads, &five, None).ok());
        let six = format!("{five} https://example.org/6");
        let report = check(Platform::Threads, &six, None);
        assert_eq!(
            report.problems,
            vec!["too many links for threads: 6, the limit is 5".to_string()]
        );
    }

    // --- Telegram and Discord ---------------------------------------------------------------------

    #[test]
    fn telegram_counts_an_emoji_outside_the_bmp_as_2_utf16_units() {
        assert_eq!(check(Platform::Telegram, "😀", None).used, 2);
        assert_eq!(check(Platform::Telegram, "é", None).used, 1);
        assert_eq!(check(Platform::Telegram, FAMILY, None).used, 11);
        assert!(check(Platform::Telegram, &"😀".repeat(2_048), None).ok());
        assert!(is_too_long(&check(
            Platform::Telegram,
            &format!("{}a", "😀".repeat(2_048)),
            None
        )));
    }

    #[test]
    fn discord_counts_code_points() {
        assert_eq!(check(Platform::Discord, "😀", None).used, 1);
        assert_eq!(check(Platform::Discord, E_ACUTE_DECOMPOSED, None).used, 2);
        assert_eq!(check(Platform::Discord, FAMILY, None).used, 7);
    }

    // --- webhook and sandbox ------------------------------------------------------------------

    #[test]
    fn webhook_and_sandbox_limit_bytes_not_characters() {
        for platform in [Platform::Webhook, Platform::Sandbox] {
            let report = check(platform, &"é".repeat(50_000), None);
            assert_eq!(report.used, 100_000);
            assert!(report.ok());
            let report = check(platform, &format!("{}a", "é".repeat(50_000)), None);
            assert_eq!(report.used, 100_001);
            assert!(is_too_long(&report));
        }
    }
}
