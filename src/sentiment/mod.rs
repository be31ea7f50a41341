//! Local sentiment scoring of replies in French and English, with no network
//! access: the language is detected per text, then lexicon features (VADER's
//! rules over embedded, permissively licensed lexicons; see
//! `data/README.md`) are combined by a tiny per-language logistic model.
//! Also: question detection (for the follow-up queue) and, in `courtesy`,
//! the check run on outgoing answers. `eval` measures the scorer on a
//! labeled file (`herald sentiment eval FILE`).

pub mod courtesy;
pub mod eval;
mod lang;
mod lexicon;
mod model;
mod question;
mod score;
mod text;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use lexicon::LEXICONS;
use text::Token;

/// The three sentiment classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Negative,
    Neutral,
    Positive,
}

impl Label {
    pub const ALL: [Label; 3] = [Label::Negative, Label::Neutral, Label::Positive];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Negative => "negative",
            Label::Neutral => "neutral",
            Label::Positive => "positive",
        }
    }

    /// Parses `negative`, `neutral` or `positive` (exact, lower case).
    pub fn parse(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Label::Negative => 0,
            Label::Neutral => 1,
            Label::Positive => 2,
        }
    }
}

/// The languages the scorer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Fr,
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::En => "en",
        }
    }
}

/// The sentiment of one text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sentiment {
    pub label: Label,
    /// In [-1, 1]: P(positive) − P(negative); negative labels have a
    /// negative score and positive labels a positive one.
    pub score: f64,
    /// The detected language; `None` when the text gives too little evidence
    /// (then both lexicons are consulted).
    pub language: Option<Language>,
}

fn tokenize(text: &str) -> Vec<Token> {
    let lex = &*LEXICONS;
    text::tokenize(text, &|chunk| lex.emoticon(chunk).is_some())
}

/// French or English, or `None` when unsure (emoji-only, a link, a name,
/// or a mix with no clear majority).
pub fn detect_language(text: &str) -> Option<Language> {
    lang::detect(&tokenize(text))
}

/// Detects the language of `text`, then scores it.
pub fn analyze(text: &str) -> Sentiment {
    let tokens = tokenize(text);
    let language = lang::detect(&tokens);
    let features = score::features(&tokens, language);
    let (label, score) = model::decide(&features, model::weights(language));
    Sentiment {
        label,
        score,
        language,
    }
}

/// The features of a text and its detected language (for fitting the model).
#[cfg(test)]
pub(crate) fn features_of(text: &str) -> (Option<Language>, score::Features) {
    let tokens = tokenize(text);
    let language = lang::detect(&tokens);
    (language, score::features(&tokens, language))
}

/// True when the text asks something, in French or English: a question mark,
/// or an interrogative form without one ("pourquoi", "est-ce que",
/// "pouvez-vous", "when will", "any update" ...).
pub fn is_question(text: &str) -> bool {
    question::is_question(&tokenize(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str) -> Label {
        analyze(text).label
    }

    #[test]
    fn hand_written_english_replies_get_their_label() {
        for text in [
            "Thank you so much, the team fixed it in minutes! 👍",
            "Great job, really helpful answer :)",
            "I love how quickly you responded, awesome service",
            "sooo goooood, thanks!!",
        ] {
            assert_eq!(label(text), Label::Positive, "{text:?}");
        }
        for text in [
            "This is unacceptable, my train was cancelled again 😡",
            "Worst service ever. Nobody answers and I'm furious",
            "I am not happy at all with this mess",
            "The staff was nice but the delay was awful",
            "This is NOT good enough. #fail",
        ] {
            assert_eq!(label(text), Label::Negative, "{text:?}");
        }
        for text in [
            "The office opens on Monday at nine.",
            "The meeting is in room B on Thursday.",
        ] {
            assert_eq!(label(text), Label::Neutral, "{text:?}");
        }
    }

    #[test]
    fn hand_written_french_replies_get_their_label() {
        for text in [
            "Merci beaucoup, votre équipe a été très efficace !",
            "Bravo pour la réactivité, super service 👏",
            "Génial, tout fonctionne de nouveau :)",
            "Franchement c'est pas mal du tout, merci",
        ] {
            assert_eq!(label(text), Label::Positive, "{text:?}");
        }
        for text in [
            "C'est scandaleux, encore un train annulé sans explication 😡",
            "Service nul, personne ne répond, je suis très déçu",
            "Je n'aime pas du tout cette décision, c'est honteux",
            "L'accueil était sympa mais le retard était inadmissible",
            "Ce n'est pas acceptable. #honte",
        ] {
            assert_eq!(label(text), Label::Negative, "{text:?}");
        }
        for text in [
            "Le bureau ouvre lundi à neuf heures.",
            "La réunion aura lieu jeudi dans la salle B.",
        ] {
            assert_eq!(label(text), Label::Neutral, "{text:?}");
        }
    }

    #[test]
    fn negation_flips_the_score() {
        assert!(analyze("This is good").score > analyze("This is not good").score);
        assert!(analyze("C'est bien").score > analyze("Ce n'est pas bien").score);
        assert!(analyze("J'aime ce service").score > analyze("Je n'aime pas ce service").score);
        assert!(analyze("c'est mal").score < analyze("c'est pas mal").score);
    }

    #[test]
    fn scores_stay_in_range_and_agree_with_labels() {
        for text in [
            "",
            "http",
            "@user",
            "👍👍👍",
            "!!!!!!!!",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "l' d' qu' n'",
            "#",
            "@",
        ] {
            let s = analyze(text);
            assert!((-1.0..=1.0).contains(&s.score), "{text:?}");
            match s.label {
                Label::Negative => assert!(s.score < 0.0),
                Label::Positive => assert!(s.score > 0.0),
                Label::Neutral => {}
            }
        }
        assert_eq!(analyze("👍👍👍").label, Label::Positive);
    }

    #[test]
    fn language_is_detected_per_text() {
        assert_eq!(
            detect_language("Bonjour, le train est en retard depuis une heure"),
            Some(Language::Fr)
        );
        assert_eq!(
            detect_language("L'équipe n'a pas répondu"),
            Some(Language::Fr)
        );
        assert_eq!(
            detect_language("Hello, the train has been late for an hour"),
            Some(Language::En)
        );
        assert_eq!(
            detect_language("Why is nobody answering?"),
            Some(Language::En)
        );
        assert_eq!(detect_language("👍👍"), None);
        assert_eq!(detect_language("http://example.com @user"), None);
        assert_eq!(detect_language(""), None);
        assert_eq!(
            analyze("Merci pour votre aide, c'est parfait").language,
            Some(Language::Fr)
        );
        assert_eq!(
            analyze("Thanks for your help, it is perfect").language,
            Some(Language::En)
        );
    }

    #[test]
    fn labels_round_trip_and_serialise_in_lower_case() {
        for l in Label::ALL {
            assert_eq!(Label::parse(l.as_str()), Some(l));
        }
        assert_eq!(Label::parse("Positive"), None);
        assert_eq!(
            serde_json::to_string(&Label::Negative).ok().as_deref(),
            Some("\"negative\"")
        );
        assert_eq!(
            serde_json::to_string(&Language::Fr).ok().as_deref(),
            Some("\"fr\"")
        );
    }
}
