//! What a rule's templates and expressions may contain. A rule renders names from a record,
//! so its language is a subset of MiniJinja in which no evaluation can build a huge value:
//! MiniJinja's fuel bounds steps, not memory, and a few steps of `{% set s = s ~ s %}` (or a
//! nested loop over `[x ~ x]`, or `x|urlencode|urlencode|…`) double a string each time. The
//! subset, checked on the parsed template when a rule is compiled:
//!
//! - statements: text, `{{ … }}`, `{% if %}` and `{% for %}` (at most four loops deep, never
//!   `recursive`); no `set`, `with`, `filter`, `macro`, `call`, `include` or `do`, so the
//!   only names bound are loop variables;
//! - a loop walks data that exists — the context, its fields, `range(…)`, a list of
//!   constants, or one of those filtered or sorted — never a value computed from strings, so
//!   nested loops cannot compound;
//! - filters that do not grow their input (and `join` and `replace`, replaced by versions
//!   whose result is bounded); `range` is the only function; no `*` or `**`; at most 16
//!   concatenations (`~`, `+`) in one template.
//!
//! Sizes therefore stay within a small multiple of the record's own, and the output is capped
//! separately ([`crate::rules::MAX_RENDERED_BYTES`]).

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};

/// Deepest loop nesting.
pub const MAX_LOOP_DEPTH: usize = 4;
/// Most concatenations (`~`, `+`) in one template or expression.
pub const MAX_CONCATENATIONS: usize = 16;

/// Filters a rule may use: none makes its input much larger.
const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
];

/// Filters that keep a collection a collection of existing values (fine for a loop).
const COLLECTION_FILTERS: &[&str] = &[
    "batch",
    "default",
    "d",
    "dictsort",
    "items",
    "list",
    "reject",
    "rejectattr",
    "reverse",
    "select",
    "selectattr",
    "slice",
    "sort",
    "unique",
];

/// Why a template or expression is outside the rule language.
fn refuse(what: impl Into<String>) -> String {
    what.into()
}

struct Checker {
    concatenations: usize,
}

/// Checks a parsed template; `Err` says what is not allowed.
pub fn check_template(stmt: &Stmt<'_>) -> Result<(), String> {
    let mut checker = Checker { concatenations: 0 };
    checker.stmt(stmt, 0)
}

/// Checks a parsed expression.
pub fn check_expression(expr: &Expr<'_>) -> Result<(), String> {
    let mut checker = Checker { concatenations: 0 };
    checker.expr(expr)
}

impl Checker {
    fn stmts(&mut self, stmts: &[Stmt<'_>], depth: usize) -> Result<(), String> {
        stmts.iter().try_for_each(|s| self.stmt(s, depth))
    }

    fn stmt(&mut self, stmt: &Stmt<'_>, depth: usize) -> Result<(), String> {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children, depth),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) => Ok(()),
            Stmt::IfCond(c) => {
                self.expr(&c.expr)?;
                self.stmts(&c.true_body, depth)?;
                self.stmts(&c.false_body, depth)
            }
            Stmt::ForLoop(l) => {
                if l.recursive {
                    return Err(refuse("recursive loops are not available in rules"));
                }
                if depth + 1 > MAX_LOOP_DEPTH {
                    return Err(refuse(format!(
                        "loops may nest at most {MAX_LOOP_DEPTH} deep in a rule"
                    )));
                }
                self.iterable(&l.iter)?;
                if let Some(f) = &l.filter_expr {
                    self.expr(f)?;
                }
                self.stmts(&l.body, depth + 1)?;
                self.stmts(&l.else_body, depth)
            }
            Stmt::Set(_) | Stmt::SetBlock(_) => Err(refuse(
                "{% set %} is not available in rules: a rule renders names from the record; compute other values in the application",
            )),
            Stmt::WithBlock(_) => Err(refuse("{% with %} is not available in rules")),
            Stmt::FilterBlock(_) => Err(refuse("{% filter %} blocks are not available in rules")),
            Stmt::AutoEscape(_) => Err(refuse("{% autoescape %} is not available in rules")),
            Stmt::Do(_) => Err(refuse("{% do %} is not available in rules")),
            #[allow(unreachable_patterns)]
            _ => Err(refuse(
                "only {% if %} and {% for %} blocks are available in rules",
            )),
        }
    }

    /// A loop's iterable: data that exists, never a computed string.
    fn iterable(&mut self, expr: &Expr<'_>) -> Result<(), String> {
        let projection = match expr {
            Expr::Var(_) | Expr::Const(_) => true,
            Expr::GetAttr(a) => return self.iterable(&a.expr),
            Expr::GetItem(i) => {
                self.expr(&i.subscript_expr)?;
                return self.iterable(&i.expr);
            }
            Expr::Slice(s) => {
                for bound in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(bound)?;
                }
                return self.iterable(&s.expr);
            }
            Expr::List(l) => l.as_const().is_some(),
            Expr::Call(c) if matches!(&c.expr, Expr::Var(v) if v.id == "range") => {
                return self.args(&c.args);
            }
            Expr::Filter(f) if COLLECTION_FILTERS.contains(&f.name) => {
                self.args(&f.args)?;
                return match &f.expr {
                    Some(inner) => self.iterable(inner),
                    None => Ok(()),
                };
            }
            Expr::Filter(f) if f.name == "map" && self.map_is_projection(&f.args) => {
                self.args(&f.args)?;
                return match &f.expr {
                    Some(inner) => self.iterable(inner),
                    None => Ok(()),
                };
            }
            _ => false,
        };
        if projection {
            Ok(())
        } else {
            Err(refuse(
                "a loop in a rule walks the record's data (record, parent, children, siblings, attachment, their fields, range(…), a list of constants, or those filtered or sorted), not a computed value",
            ))
        }
    }

    /// `map(attribute=…)`, or `map('<allowed filter>')`.
    fn map_is_projection(&self, args: &[CallArg<'_>]) -> bool {
        match args.first() {
            Some(CallArg::Kwarg(name, _)) => *name == "attribute",
            Some(CallArg::Pos(Expr::Const(c))) => c
                .value
                .as_str()
                .is_some_and(|name| FILTERS.contains(&name) && name != "map"),
            _ => false,
        }
    }

    fn args(&mut self, args: &[CallArg<'_>]) -> Result<(), String> {
        for arg in args {
            match arg {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e)?,
            }
        }
        Ok(())
    }

    fn expr(&mut self, expr: &Expr<'_>) -> Result<(), String> {
        match expr {
            Expr::Var(_) | Expr::Const(_) => Ok(()),
            Expr::Slice(s) => {
                self.expr(&s.expr)?;
                for bound in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(bound)?;
                }
                Ok(())
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => {
                match b.op {
                    ast::BinOpKind::Mul | ast::BinOpKind::Pow => {
                        return Err(refuse(
                            "`*` and `**` are not available in rules (they can build huge strings)",
                        ));
                    }
                    ast::BinOpKind::Concat | ast::BinOpKind::Add => {
                        self.concatenations += 1;
                        if self.concatenations > MAX_CONCATENATIONS {
                            return Err(refuse(format!(
                                "a rule template may join at most {MAX_CONCATENATIONS} values with `~` or `+`"
                            )));
                        }
                    }
                    _ => {}
                }
                self.expr(&b.left)?;
                self.expr(&b.right)
            }
            Expr::Compare(c) => {
                self.expr(&c.expr)?;
                c.ops.iter().try_for_each(|op| self.expr(&op.expr))
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr)?;
                self.expr(&i.true_expr)?;
                match &i.false_expr {
                    Some(f) => self.expr(f),
                    None => Ok(()),
                }
            }
            Expr::Filter(f) => {
                if !FILTERS.contains(&f.name) {
                    return Err(refuse(format!(
                        "the filter {:?} is not available in rules (available: {})",
                        f.name,
                        FILTERS.join(", ")
                    )));
                }
                if f.name == "map" && !self.map_is_projection(&f.args) {
                    return Err(refuse(
                        "map takes attribute=… or the name of an available filter in rules",
                    ));
                }
                if let Some(inner) = &f.expr {
                    self.expr(inner)?;
                }
                self.args(&f.args)
            }
            Expr::Test(t) => {
                self.expr(&t.expr)?;
                self.args(&t.args)
            }
            Expr::GetAttr(a) => self.expr(&a.expr),
            Expr::GetItem(i) => {
                self.expr(&i.expr)?;
                self.expr(&i.subscript_expr)
            }
            Expr::Call(c) => match &c.expr {
                Expr::Var(v) if v.id == "range" => self.args(&c.args),
                _ => Err(refuse("range(…) is the only function available in rules")),
            },
            Expr::List(l) => l.items.iter().try_for_each(|e| self.expr(e)),
            Expr::Map(m) => {
                m.keys.iter().try_for_each(|e| self.expr(e))?;
                m.values.iter().try_for_each(|e| self.expr(e))
            }
        }
    }
}
