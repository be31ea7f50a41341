//! Courtesy check run on an answer before Herald publishes it: flags
//! aggressive wording (orders to be quiet, threats), insults, sarcastic blame
//! and text written in capitals, in French and English, and says what to
//! change. Matching ignores case, accents, punctuation and apostrophe style.

use std::sync::LazyLock;

use serde::Serialize;
use utoipa::ToSchema;

use super::text::fold_accents;

/// One problem found in a draft answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CourtesyIssue {
    /// `aggressive`, `insult`, `sarcastic_blame` or `all_caps`.
    #[schema(example = "sarcastic_blame")]
    pub kind: String,
    /// The words that triggered the issue, as written in the draft.
    #[schema(example = "as usual you")]
    pub excerpt: String,
    /// What to change, in plain English.
    pub advice: String,
}

const AGGRESSIVE: &[&str] = &[
    // English: orders to be quiet or go away, ultimatums, threats.
    "shut up",
    "shut your mouth",
    "get lost",
    "go to hell",
    "piss off",
    "fuck off",
    "back off",
    "va te faire foutre",
    "va te faire voir",
    "allez vous faire foutre",
    "allez vous faire voir",
    "you'd better",
    "you had better",
    "stop whining",
    "stop complaining",
    "get over it",
    "last warning",
    "you will regret",
    "you'll regret",
    "you will be sorry",
    "you'll be sorry",
    "watch your back",
    "we know where you live",
    "i know where you live",
    "we will find you",
    "don't test us",
    "don't push your luck",
    "take it or leave it",
    // French.
    "tais toi",
    "taisez vous",
    "ta gueule",
    "fermez vos gueules",
    "degagez",
    "casse toi",
    "cassez vous",
    "fous le camp",
    "foutez le camp",
    "vous avez interet",
    "t'as interet",
    "tu as interet",
    "vous allez le regretter",
    "tu vas le regretter",
    "vous le regretterez",
    "tu le regretteras",
    "gare a vous",
    "gare a toi",
    "arretez de vous plaindre",
    "arrete de te plaindre",
    "arretez de pleurnicher",
    "dernier avertissement",
    "c'est a prendre ou a laisser",
    "on sait ou vous habitez",
];

const INSULTS: &[&str] = &[
    // English.
    "idiot",
    "idiots",
    "idiotic",
    "stupid",
    "stupidity",
    "moron",
    "morons",
    "moronic",
    "dumb",
    "dumbass",
    "imbecile",
    "imbeciles",
    "fool",
    "fools",
    "loser",
    "losers",
    "pathetic",
    "clown",
    "clowns",
    "retard",
    "retarded",
    "jerk",
    "jerks",
    "asshole",
    "assholes",
    "bastard",
    "bastards",
    "ignorant",
    "halfwit",
    "nitwit",
    "cretin",
    "cretins",
    "brainless",
    "clueless",
    "troll",
    "trolls",
    "whiner",
    "whiners",
    // French (accents are folded before matching).
    "idiote",
    "idiotes",
    "cretine",
    "cretines",
    "debile",
    "debiles",
    "stupide",
    "stupides",
    "con",
    "conne",
    "connes",
    "connard",
    "connards",
    "connasse",
    "abruti",
    "abrutie",
    "abrutis",
    "bouffon",
    "bouffons",
    "bouffonne",
    "guignol",
    "guignols",
    "andouille",
    "ignare",
    "ignares",
    "neuneu",
    "cassos",
    "naze",
    "nazes",
    "minable",
    "minables",
    "pauvre type",
    "pauvres types",
    "pauvre con",
    "pleurnichard",
    "pleurnichards",
];

const SARCASTIC_BLAME: &[&str] = &[
    // English.
    "as usual you",
    "maybe read",
    "maybe you should read",
    "perhaps read",
    "try reading",
    "learn to read",
    "if you had read",
    "if you'd read",
    "had you read",
    "if you had bothered",
    "did you even read",
    "did you even bother",
    "did you even try",
    "rtfm",
    "obviously you didn't",
    "obviously you did not",
    "obviously you haven't",
    "obviously you have not",
    "clearly you didn't",
    "clearly you did not",
    "clearly you haven't",
    "evidently you didn't",
    "as we already said",
    "as we already told you",
    "as we clearly stated",
    "like we said",
    "like we already said",
    "for the hundredth time",
    "for the umpteenth time",
    "not rocket science",
    "it's not that complicated",
    "your own fault",
    "you only have yourself to blame",
    "nice try",
    "thanks for nothing",
    // French (accents folded: "deja", "enieme").
    "comme d'habitude vous",
    "comme d'habitude tu",
    "si vous aviez lu",
    "si tu avais lu",
    "si vous lisiez",
    "si tu lisais",
    "si vous aviez pris la peine",
    "si tu avais pris la peine",
    "apprenez a lire",
    "apprends a lire",
    "lisez donc",
    "fallait lire",
    "il suffisait de lire",
    "visiblement vous n'avez pas",
    "visiblement tu n'as pas",
    "manifestement vous n'avez pas",
    "evidemment vous n'avez pas",
    "vous n'avez visiblement pas",
    "vous n'avez evidemment pas",
    "vous n'avez manifestement pas",
    "c'est pourtant simple",
    "c'est pourtant clair",
    "ce n'est pas sorcier",
    "c'est pas sorcier",
    "comme deja dit",
    "comme on l'a deja dit",
    "comme nous l'avons deja dit",
    "comme nous l'avons deja indique",
    "pour la enieme fois",
    "pour l'enieme fois",
    "pour la centieme fois",
    "pour la millieme fois",
    "c'est de votre faute",
    "c'est votre faute",
    "c'est ta faute",
    "vous ne pouvez vous en prendre qu'a vous",
    "merci pour rien",
];

/// Lower case, accents folded, every apostrophe as `'`, every other
/// non-alphanumeric character as a space, spaces collapsed, one space at
/// each end; `origin[i]` is the byte range in the source of normalized byte `i`.
struct Normalized {
    text: String,
    origin: Vec<(usize, usize)>,
}

fn normalize(source: &str) -> Normalized {
    let mut text = String::from(" ");
    let mut origin = vec![(0, 0)];
    for (start, c) in source.char_indices() {
        let end = start + c.len_utf8();
        let mapped: String = if c == '\'' || c == '’' || c == 'ʼ' {
            "'".into()
        } else if c.is_alphanumeric() {
            fold_accents(&c.to_lowercase().collect::<String>())
        } else {
            " ".into()
        };
        for m in mapped.chars() {
            if m == ' ' && text.ends_with(' ') {
                continue;
            }
            text.push(m);
            origin.extend(std::iter::repeat_n((start, end), m.len_utf8()));
        }
    }
    if !text.ends_with(' ') {
        text.push(' ');
        origin.push((source.len(), source.len()));
    }
    Normalized { text, origin }
}

impl Normalized {
    /// Source excerpts of every whole-word occurrence of `pattern` (normalized).
    fn find_all<'a>(&self, source: &'a str, pattern: &str) -> Vec<&'a str> {
        let needle = format!(" {pattern} ");
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(pos) = self.text[from..].find(&needle) {
            let first = from + pos + 1;
            let last = first + pattern.len() - 1;
            let (start, _) = self.origin[first];
            let (_, end) = self.origin[last];
            if let Some(excerpt) = source.get(start..end) {
                found.push(excerpt);
            }
            from = first;
        }
        found
    }
}

struct Rule {
    kind: &'static str,
    patterns: Vec<String>,
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |kind, list: &[&str]| Rule {
        kind,
        patterns: list
            .iter()
            .map(|p| normalize(p).text.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
    };
    vec![
        rule("aggressive", AGGRESSIVE),
        rule("insult", INSULTS),
        rule("sarcastic_blame", SARCASTIC_BLAME),
    ]
});

fn advice(kind: &str, excerpt: &str) -> String {
    match kind {
        "aggressive" => format!(
            "Remove \"{excerpt}\": it orders, threatens or dismisses the reader. Say what you \
             are doing and what you need from them instead, e.g. \"Could you send us your \
             booking number so we can check?\" / \"Pourriez-vous nous envoyer votre numéro de \
             dossier ?\""
        ),
        "insult" => format!(
            "Remove \"{excerpt}\": never judge the person. Describe the problem and the next \
             step instead, e.g. \"There seems to be a misunderstanding; here is what happened\" \
             / \"Il semble y avoir un malentendu ; voici ce qui s'est passé.\""
        ),
        "sarcastic_blame" => format!(
            "Drop \"{excerpt}\": it blames the reader. Give the information again, neutrally, \
             and offer help, e.g. \"The details are on our information page; we can walk you \
             through them\" / \"Les détails sont sur notre page d'information ; nous pouvons \
             vous guider.\""
        ),
        _ => "Write in normal sentence case: text in capitals reads as shouting. Keep \
              capitals for acronyms such as SNCF and for the first letter of sentences and \
              names."
            .to_string(),
    }
}

/// Cased letters needed before a whole text counts as written in capitals.
const CAPS_MIN_LETTERS: usize = 12;
/// Share of upper-case letters among cased letters for a shouted text.
const CAPS_MIN_SHARE: f64 = 0.7;
/// A run of at least this many consecutive all-capital words ...
const CAPS_RUN_WORDS: usize = 3;
/// ... with at least this many letters is shouting even in a calm text.
const CAPS_RUN_LETTERS: usize = 10;

fn shouting(text: &str) -> Option<String> {
    let upper = text.chars().filter(|c| c.is_uppercase()).count();
    let lower = text.chars().filter(|c| c.is_lowercase()).count();
    if upper + lower >= CAPS_MIN_LETTERS && upper as f64 >= CAPS_MIN_SHARE * (upper + lower) as f64
    {
        return Some(shorten(text.trim(), 80));
    }
    // A run of capitalised words inside an otherwise normal text.
    let long_enough = |run: &[&str]| {
        let letters: usize = run
            .iter()
            .map(|w| w.chars().filter(|c| c.is_alphabetic()).count())
            .sum();
        run.len() >= CAPS_RUN_WORDS && letters >= CAPS_RUN_LETTERS
    };
    let mut run: Vec<&str> = Vec::new();
    let mut best: Option<Vec<&str>> = None;
    for word in text.split_whitespace() {
        let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
        if letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase()) {
            run.push(word);
        } else if letters.is_empty() && !run.is_empty() {
            // Punctuation or numbers inside a shouted run do not end it.
        } else {
            if best.is_none() && long_enough(&run) {
                best = Some(run.clone());
            }
            run.clear();
        }
    }
    if best.is_none() && long_enough(&run) {
        best = Some(run);
    }
    best.map(|run| shorten(&run.join(" "), 80))
}

fn shorten(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

/// Problems in a draft answer; empty when it is courteous.
pub fn check(text: &str) -> Vec<CourtesyIssue> {
    let normalized = normalize(text);
    let mut issues: Vec<CourtesyIssue> = Vec::new();
    for rule in RULES.iter() {
        for pattern in &rule.patterns {
            for excerpt in normalized.find_all(text, pattern) {
                let duplicate = issues.iter().any(|i| {
                    i.kind == rule.kind
                        && (i.excerpt.contains(excerpt) || excerpt.contains(&i.excerpt))
                });
                if !duplicate {
                    issues.push(CourtesyIssue {
                        kind: rule.kind.to_string(),
                        excerpt: excerpt.to_string(),
                        advice: advice(rule.kind, excerpt),
                    });
                }
            }
        }
    }
    if let Some(excerpt) = shouting(text) {
        issues.push(CourtesyIssue {
            kind: "all_caps".into(),
            advice: advice("all_caps", &excerpt),
            excerpt,
        });
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        check(text).into_iter().map(|i| i.kind).collect()
    }

    #[test]
    fn courteous_answers_pass() {
        for text in [
            "Nous sommes désolés, nous revenons vers vous",
            "We're sorry for the trouble, we're on it",
            "Bonjour, le service SNCF reprend à 14h. Merci de votre patience.",
            "OK, thanks for letting us know. Could you DM us your booking reference?",
            "Merci pour votre message : nos équipes EDF sont sur place.",
            "Nous comprenons votre colère et nous vous tenons informés.",
            "",
        ] {
            assert!(
                check(text).is_empty(),
                "{text:?} flagged: {:?}",
                check(text)
            );
        }
    }

    #[test]
    fn aggressive_wording_is_flagged_in_both_languages() {
        assert_eq!(
            kinds("Shut up and wait like everyone else."),
            ["aggressive"]
        );
        assert_eq!(kinds("You'd better stop posting this."), ["aggressive"]);
        assert_eq!(kinds("Tais-toi et attends."), ["aggressive"]);
        assert_eq!(
            kinds("Vous avez intérêt à retirer ce message"),
            ["aggressive"]
        );
        assert_eq!(kinds("Vous allez le regretter."), ["aggressive"]);
    }

    #[test]
    fn insults_are_flagged_in_both_languages() {
        assert_eq!(kinds("Only an idiot would miss that."), ["insult"]);
        assert_eq!(kinds("What a stupid question"), ["insult"]);
        assert_eq!(kinds("Quel crétin."), ["insult"]);
        assert_eq!(kinds("Une remarque débile"), ["insult"]);
    }

    #[test]
    fn sarcastic_blame_is_flagged_in_both_languages() {
        assert_eq!(kinds("As usual, you complain first."), ["sarcastic_blame"]);
        assert_eq!(
            kinds("Maybe read the instructions next time."),
            ["sarcastic_blame"]
        );
        assert_eq!(kinds("Obviously you didn't check."), ["sarcastic_blame"]);
        assert_eq!(
            kinds("Comme d’habitude, vous n'avez rien compris."),
            ["sarcastic_blame"]
        );
        assert_eq!(
            kinds("Si vous aviez lu le message, vous sauriez."),
            ["sarcastic_blame"]
        );
    }

    #[test]
    fn capitals_are_flagged_but_acronyms_are_not() {
        assert_eq!(kinds("WE ARE WORKING ON IT, PLEASE WAIT"), ["all_caps"]);
        assert_eq!(
            kinds("Nous vous avons dit QUE LE TRAIN EST ANNULÉ."),
            ["all_caps"]
        );
        assert!(kinds("SNCF").is_empty());
        assert!(kinds("OK").is_empty());
        assert!(kinds("Le TGV de la SNCF part à 9h, OK ?").is_empty());
    }

    #[test]
    fn excerpt_is_the_source_text_and_advice_is_concrete() {
        let issues = check("Franchement, COMME D'HABITUDE vous râlez");
        let blame = issues.iter().find(|i| i.kind == "sarcastic_blame");
        assert_eq!(
            blame.map(|i| i.excerpt.as_str()),
            Some("COMME D'HABITUDE vous")
        );
        assert!(blame.is_some_and(|i| i.advice.contains("COMME D'HABITUDE vous")));
        let issues = check("You are a MORON.");
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].excerpt, "MORON");
        assert!(issues[0].advice.starts_with("Remove \"MORON\""));
    }
}
