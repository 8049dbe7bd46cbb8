//! `driftwatch rules …`: validate, list and test rule files; print the field table.

use anyhow::Context as _;
use driftwatch_rules::{
    compile, fields_markdown, fields_text, parse_cases, run_cases, CompileOptions, Compiled,
    Diagnostic, LoadResult, Loader,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Load and compile rule files (and directories of *.yaml/*.yml), print every diagnostic.
    Validate {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Skip rules that use fields driftwatch does not provide (warning instead of error).
        #[arg(long)]
        skip_unknown: bool,
    },
    /// List the rules of rule files: name, priority, enabled, source, tags.
    List {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Run test cases (events as field maps, expected rule names) against rule files.
    Test {
        /// The case file (format: crates/driftwatch-rules/src/cases.rs).
        #[arg(value_name = "CASES")]
        cases: PathBuf,
        /// Rule files or directories [default: rules/driftwatch_rules.yaml].
        #[arg(long, value_name = "PATH", num_args = 1..)]
        rules: Vec<PathBuf>,
        /// Skip rules that use fields driftwatch does not provide.
        #[arg(long)]
        skip_unknown: bool,
    },
    /// Print the fields rules may use.
    Fields {
        /// As the Markdown page docs/fields.md.
        #[arg(long)]
        markdown: bool,
    },
}

fn load(paths: &[PathBuf]) -> anyhow::Result<LoadResult> {
    let mut loader = Loader::default();
    for f in driftwatch_rules::rule_files(paths)? {
        loader.add_file(&f);
    }
    Ok(loader.finish())
}

fn print_diags(diags: &[Diagnostic]) {
    for d in diags {
        println!("{d}");
    }
}

pub fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RulesCommand::Validate {
            paths,
            skip_unknown,
        } => {
            let loaded = load(&paths)?;
            let compiled = compile(
                &loaded,
                &CompileOptions {
                    skip_unknown,
                    ..CompileOptions::default()
                },
            );
            print_diags(&loaded.diagnostics);
            print_diags(&compiled.diagnostics);
            let errors = loaded.errors().count() + compiled.stats.errors;
            println!(
                "rules: {} loaded, {} skipped for unsupported fields, {} errors",
                compiled.stats.loaded, compiled.stats.skipped_unknown, errors
            );
            Ok(exit(errors == 0))
        }
        RulesCommand::List { paths } => {
            let loaded = load(&paths)?;
            print_diags(&loaded.diagnostics);
            for r in &loaded.rules {
                println!(
                    "{}\t{}\t{}\t{}\t[{}]",
                    r.name,
                    r.priority,
                    if r.enabled { "enabled" } else { "disabled" },
                    r.source,
                    r.tags.join(", ")
                );
            }
            Ok(exit(!loaded.has_errors()))
        }
        RulesCommand::Test {
            cases,
            rules,
            skip_unknown,
        } => {
            let rules = if rules.is_empty() {
                vec![PathBuf::from("rules/driftwatch_rules.yaml")]
            } else {
                rules
            };
            let loaded = load(&rules)?;
            let compiled = compile(
                &loaded,
                &CompileOptions {
                    skip_unknown,
                    ..CompileOptions::default()
                },
            );
            if loaded.has_errors() || compiled.has_errors() {
                print_diags(&loaded.diagnostics);
                print_diags(&compiled.diagnostics);
                anyhow::bail!("the rules do not compile");
            }
            run_test(&cases, &compiled)
        }
        RulesCommand::Fields { markdown } => {
            print!(
                "{}",
                if markdown {
                    fields_markdown()
                } else {
                    fields_text()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_test(cases: &Path, compiled: &Compiled) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(cases)
        .with_context(|| format!("cannot read test cases {}", cases.display()))?;
    let (cases, diags) = parse_cases(&cases.display().to_string(), &text);
    print_diags(&diags);
    let results = run_cases(&compiled.rules, &cases);
    let mut failed = 0;
    for r in &results {
        if r.passed {
            println!("pass: {}", r.name);
        } else {
            failed += 1;
            println!(
                "FAIL: {}: expected [{}], matched [{}]",
                r.name,
                r.expected.join(", "),
                r.matched.join(", ")
            );
        }
    }
    let failed = failed + diags.iter().filter(|d| d.is_error()).count();
    println!(
        "{} passed, {} failed",
        results.len() - (failed.min(results.len())),
        failed
    );
    Ok(exit(failed == 0))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
