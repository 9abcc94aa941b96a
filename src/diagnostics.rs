//! Located problems in the operator's files (inventory, playbooks, templates).
//!
//! A [`Problem`] is one thing wrong at one byte span, with a label and an optional
//! `help:` line; [`FileProblems`] carries every problem of one file together with its
//! source text so miette can render `file:line:col` and the offending lines. Library code
//! returns these as values; only `main` renders them.

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use thiserror::Error;

/// One located problem.
#[derive(Debug, Error, Diagnostic, Clone)]
#[error("{message}")]
pub struct Problem {
    pub message: String,
    #[label(collection)]
    pub labels: Vec<LabeledSpan>,
    #[help]
    pub help: Option<String>,
}

impl Problem {
    /// A problem at `span` (byte offset, byte length) with a label.
    pub fn at(message: impl Into<String>, span: (usize, usize), label: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            labels: vec![LabeledSpan::new_primary_with_span(
                Some(label.into()),
                SourceSpan::from(span),
            )],
            help: None,
        }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Adds a secondary label, e.g. "first defined here".
    pub fn also(mut self, span: (usize, usize), label: impl Into<String>) -> Self {
        self.labels.push(LabeledSpan::new_with_span(
            Some(label.into()),
            SourceSpan::from(span),
        ));
        self
    }
    /// The primary span's byte offset (used to sort problems in file order).
    pub fn offset(&self) -> usize {
        self.labels.first().map(|l| l.offset()).unwrap_or(0)
    }
}

/// Every problem found in one file. One problem is shown as the headline itself; several
/// are listed under "N problems in FILE", each with its own snippet.
#[derive(Debug, Error)]
#[error("{}", self.headline())]
pub struct FileProblems {
    pub name: String,
    pub src: NamedSource<String>,
    pub problems: Vec<Problem>,
}

impl FileProblems {
    fn headline(&self) -> String {
        match self.problems.as_slice() {
            [one] => one.message.clone(),
            many => format!("{} in {}", plural(many.len(), "problem"), self.name),
        }
    }
    fn single(&self) -> Option<&Problem> {
        match self.problems.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl Diagnostic for FileProblems {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.single()
            .map(|p| Box::new(p.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.single()
            .and_then(|p| p.help.as_ref())
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.single().is_some() {
            return None;
        }
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

/// Lines longer than this (bytes) are not drawn under a problem: miette's renderer pads to
/// the label's column with a format width, which panics past 65,535 (issue 11: a one-line
/// JSON inventory of a thousand hosts with one typo), and such a line is unreadable anyway.
/// A problem on one says where it is in its message and quotes the text around it.
pub const LONG_LINE: usize = 1000;

/// Bytes of context quoted on each side of a problem on a long line.
const CLIP_CONTEXT: usize = 60;

/// Moves the location of a problem whose primary label is on a line longer than
/// [`LONG_LINE`] into its message (`file:line:col` and a clipped excerpt) and drops its
/// labels, so that nothing draws the long line.
fn clip_long_line(name: &str, text: &str, p: &mut Problem) {
    let Some(first) = p.labels.first() else {
        return;
    };
    let at = first.offset().min(text.len());
    let line_start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[at..].find('\n').map(|i| at + i).unwrap_or(text.len());
    if line_end - line_start <= LONG_LINE {
        return;
    }
    let line = text[..line_start].matches('\n').count() + 1;
    let col = text[line_start..at].chars().count() + 1;
    let floor = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let from = floor(at.saturating_sub(CLIP_CONTEXT).max(line_start));
    let to = floor((at + first.len() + CLIP_CONTEXT).min(line_end));
    let excerpt: String = text[from..to]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    p.message = format!(
        "{}\n  at {name}:{line}:{col} (a {} byte line), near: {}{excerpt}{}",
        p.message,
        line_end - line_start,
        if from > line_start { "…" } else { "" },
        if to < line_end { "…" } else { "" },
    );
    p.labels.clear();
}

impl FileProblems {
    pub fn new(name: &str, text: String, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| p.offset());
        for p in &mut problems {
            clip_long_line(name, &text, p);
        }
        FileProblems {
            name: name.to_string(),
            src: NamedSource::new(name, text),
            problems,
        }
    }
}

/// "1 problem", "3 problems".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The closest of `candidates` to `given` (Jaro-Winkler ≥ 0.8), for "did you mean" help.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Byte span of a serde-saphyr location: (offset, len), len at least 1.
pub fn span_of(loc: &serde_saphyr::Location, text: &str) -> (usize, usize) {
    let s = loc.span();
    let off = s
        .byte_offset()
        .map(|o| o as usize)
        .unwrap_or_else(|| offset_of_line_col(text, loc.line(), loc.column()));
    let len = s.byte_len().map(|l| l as usize).unwrap_or(0).max(1);
    let off = off.min(text.len());
    (
        off,
        len.min(text.len().saturating_sub(off))
            .max(if off < text.len() { 1 } else { 0 }),
    )
}

/// Byte offset of a 1-based line and column (in characters).
pub fn offset_of_line_col(text: &str, line: u64, col: u64) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            return off
                + l.char_indices()
                    .nth(col.saturating_sub(1) as usize)
                    .map(|(b, _)| b)
                    .unwrap_or(l.len());
        }
        off += l.len();
    }
    text.len()
}
