//! Golden tests: canonical text, span-annotated tree and diagnostics for accepted and
//! rejected conditions. Regenerate with `UPDATE_EXPECT=1 cargo test -p driftwatch-rule-lang`.

mod common_dump;

use common_dump::{diags, render};
use driftwatch_rule_lang::parse;
use expect_test::{expect, Expect};

fn check_all(inputs: &[&str], expected: &Expect) {
    let mut out = String::new();
    for src in inputs {
        assert_round_trip(src);
        out.push_str(&format!("=== {src:?}\n{}", render(src)));
    }
    expected.assert_eq(&out);
}

/// For a valid input, the canonical text parses back to the same tree.
fn assert_round_trip(src: &str) {
    let p = parse(src);
    if let Some(e) = p.expr.filter(|_| p.diagnostics.is_empty()) {
        let printed = e.to_string();
        let again = parse(&printed);
        assert!(
            again.diagnostics.is_empty(),
            "{printed:?}: {:?}",
            again.diagnostics
        );
        assert_eq!(
            again.expr.map(|x| x.without_spans()),
            Some(e.without_spans()),
            "{printed:?}"
        );
    }
}

fn check_rejected(inputs: &[&str], expected: &Expect) {
    let mut out = String::new();
    for src in inputs {
        assert!(
            !parse(src).diagnostics.is_empty(),
            "expected errors for {src:?}"
        );
        out.push_str(&format!("=== {src:?}\n{}", diags(src)));
    }
    expected.assert_eq(&out);
}

/// Falco's test_accept also tries each input padded and with all spaces turned into
/// newlines and into tabs; we do the same and compare trees (spans aside).
fn accepted_with_whitespace_variants(src: &str) {
    let base = parse(src);
    assert!(
        base.diagnostics.is_empty(),
        "{src:?}: {:?}",
        base.diagnostics
    );
    let base = base.expr.expect("expr").without_spans();
    let padded = format!(" {src} ");
    for variant in [
        padded.clone(),
        padded.replace(' ', "\n"),
        padded.replace(' ', "\t"),
    ] {
        let p = parse(&variant);
        assert!(p.diagnostics.is_empty(), "{variant:?}: {:?}", p.diagnostics);
        assert_eq!(p.expr.expect("expr").without_spans(), base, "{variant:?}");
    }
}

#[test]
fn boolean_structure_and_precedence() {
    check_all(
        &[
            "a and b or c and not d",
            "a or b and c",
            "(a or b) and c",
            "a and (b and c)",
            "not a and b",
            "not (a and b)",
            "not not a",
            "(((a)))",
            "(a)and(b)or(c)",
            "a and(b)",
            "not(a)and(not(b))",
            "a and notb and not_macro and and_macro or or_macro",
            "a\n  and b\n\tor c",
            "proc.name exists and not proc.pname exists",
        ],
        &expect![[r#"
            === "a and b or c and not d"
            a and b or c and not d
            or @0..22
              and @0..7
                macro a @0..1
                macro b @6..7
              and @11..22
                macro c @11..12
                not @17..22 kw@17..20
                  macro d @21..22
            === "a or b and c"
            a or b and c
            or @0..12
              macro a @0..1
              and @5..12
                macro b @5..6
                macro c @11..12
            === "(a or b) and c"
            (a or b) and c
            and @1..14
              or @1..7
                macro a @1..2
                macro b @6..7
              macro c @13..14
            === "a and (b and c)"
            a and (b and c)
            and @0..14
              macro a @0..1
              and @7..14
                macro b @7..8
                macro c @13..14
            === "not a and b"
            not a and b
            and @0..11
              not @0..5 kw@0..3
                macro a @4..5
              macro b @10..11
            === "not (a and b)"
            not (a and b)
            not @0..12 kw@0..3
              and @5..12
                macro a @5..6
                macro b @11..12
            === "not not a"
            not not a
            not @0..9 kw@0..3
              not @4..9 kw@4..7
                macro a @8..9
            === "(((a)))"
            a
            macro a @3..4
            === "(a)and(b)or(c)"
            a and b or c
            or @1..13
              and @1..8
                macro a @1..2
                macro b @7..8
              macro c @12..13
            === "a and(b)"
            a and b
            and @0..7
              macro a @0..1
              macro b @6..7
            === "not(a)and(not(b))"
            not a and not b
            and @0..15
              not @0..5 kw@0..3
                macro a @4..5
              not @10..15 kw@10..13
                macro b @14..15
            === "a and notb and not_macro and and_macro or or_macro"
            a and notb and not_macro and and_macro or or_macro
            or @0..50
              and @0..38
                macro a @0..1
                macro notb @6..10
                macro not_macro @15..24
                macro and_macro @29..38
              macro or_macro @42..50
            === "a\n  and b\n\tor c"
            a and b or c
            or @0..15
              and @0..9
                macro a @0..1
                macro b @8..9
              macro c @14..15
            === "proc.name exists and not proc.pname exists"
            proc.name exists and not proc.pname exists
            and @0..42
              check @0..16 op 'exists' @10..16
                field proc.name @0..9
              not @21..42 kw@21..24
                check @25..42 op 'exists' @36..42
                  field proc.pname @25..35
        "#]],
    );
}

#[test]
fn comparison_operators() {
    check_all(
        &[
            "proc.name = bash",
            "proc.name=bash",
            "proc.name == bash",
            "proc.name != bash",
            "proc.name !=bash",
            "evt.num < 1",
            "evt.num <=1",
            "evt.num > -1",
            "evt.num >= +1.5e+10",
            "evt.num <= 0x1F",
            "proc.name exists",
            "proc.name existsand m",
        ],
        &expect![[r#"
            === "proc.name = bash"
            proc.name = bash
            check @0..16 op '=' @10..11
              field proc.name @0..9
              value bare "bash" @12..16
            === "proc.name=bash"
            proc.name = bash
            check @0..14 op '=' @9..10
              field proc.name @0..9
              value bare "bash" @10..14
            === "proc.name == bash"
            proc.name == bash
            check @0..17 op '==' @10..12
              field proc.name @0..9
              value bare "bash" @13..17
            === "proc.name != bash"
            proc.name != bash
            check @0..17 op '!=' @10..12
              field proc.name @0..9
              value bare "bash" @13..17
            === "proc.name !=bash"
            proc.name != bash
            check @0..16 op '!=' @10..12
              field proc.name @0..9
              value bare "bash" @12..16
            === "evt.num < 1"
            evt.num < 1
            check @0..11 op '<' @8..9
              field evt.num @0..7
              value bare "1" @10..11
            === "evt.num <=1"
            evt.num <= 1
            check @0..11 op '<=' @8..10
              field evt.num @0..7
              value bare "1" @10..11
            === "evt.num > -1"
            evt.num > -1
            check @0..12 op '>' @8..9
              field evt.num @0..7
              value bare "-1" @10..12
            === "evt.num >= +1.5e+10"
            evt.num >= +1.5e+10
            check @0..19 op '>=' @8..10
              field evt.num @0..7
              value bare "+1.5e+10" @11..19
            === "evt.num <= 0x1F"
            evt.num <= 0x1F
            check @0..15 op '<=' @8..10
              field evt.num @0..7
              value bare "0x1F" @11..15
            === "proc.name exists"
            proc.name exists
            check @0..16 op 'exists' @10..16
              field proc.name @0..9
            === "proc.name existsand m"
            proc.name exists and m
            and @0..21
              check @0..16 op 'exists' @10..16
                field proc.name @0..9
              macro m @20..21
        "#]],
    );
}

#[test]
fn string_operators() {
    check_all(
        &[
            "proc.cmdline contains x",
            "proc.cmdline icontains 'X Y'",
            "evt.buffer bcontains 7f454c46",
            "fd.name startswith /etc/",
            "evt.buffer bstartswith 7f45",
            "fd.name endswith .so",
            "fd.name glob '/tmp/*.sh'",
            "fd.name iglob *.LOG",
            "proc.cmdline regex '^sh -c .*'",
            "fd.name=*.log",
            "test.str = 0a!@#456:/\\.;!$%^&*[]{}|",
            "proc.name = not",
            "proc.name = and",
        ],
        &expect![[r#"
            === "proc.cmdline contains x"
            proc.cmdline contains x
            check @0..23 op 'contains' @13..21
              field proc.cmdline @0..12
              value bare "x" @22..23
            === "proc.cmdline icontains 'X Y'"
            proc.cmdline icontains 'X Y'
            check @0..28 op 'icontains' @13..22
              field proc.cmdline @0..12
              value sq "X Y" @23..28
            === "evt.buffer bcontains 7f454c46"
            evt.buffer bcontains 7f454c46
            check @0..29 op 'bcontains' @11..20
              field evt.buffer @0..10
              value bare "7f454c46" @21..29
            === "fd.name startswith /etc/"
            fd.name startswith /etc/
            check @0..24 op 'startswith' @8..18
              field fd.name @0..7
              value bare "/etc/" @19..24
            === "evt.buffer bstartswith 7f45"
            evt.buffer bstartswith 7f45
            check @0..27 op 'bstartswith' @11..22
              field evt.buffer @0..10
              value bare "7f45" @23..27
            === "fd.name endswith .so"
            fd.name endswith .so
            check @0..20 op 'endswith' @8..16
              field fd.name @0..7
              value bare ".so" @17..20
            === "fd.name glob '/tmp/*.sh'"
            fd.name glob '/tmp/*.sh'
            check @0..24 op 'glob' @8..12
              field fd.name @0..7
              value sq "/tmp/*.sh" @13..24
            === "fd.name iglob *.LOG"
            fd.name iglob *.LOG
            check @0..19 op 'iglob' @8..13
              field fd.name @0..7
              value bare "*.LOG" @14..19
            === "proc.cmdline regex '^sh -c .*'"
            proc.cmdline regex '^sh -c .*'
            check @0..30 op 'regex' @13..18
              field proc.cmdline @0..12
              value sq "^sh -c .*" @19..30
            === "fd.name=*.log"
            fd.name = *.log
            check @0..13 op '=' @7..8
              field fd.name @0..7
              value bare "*.log" @8..13
            === "test.str = 0a!@#456:/\\.;!$%^&*[]{}|"
            test.str = 0a!@#456:/\.;!$%^&*[]{}|
            check @0..35 op '=' @9..10
              field test.str @0..8
              value bare "0a!@#456:/\\.;!$%^&*[]{}|" @11..35
            === "proc.name = not"
            proc.name = not
            check @0..15 op '=' @10..11
              field proc.name @0..9
              value bare "not" @12..15
            === "proc.name = and"
            proc.name = and
            check @0..15 op '=' @10..11
              field proc.name @0..9
              value bare "and" @12..15
        "#]],
    );
}

#[test]
fn list_operators_and_lists() {
    check_all(
        &[
            "proc.name in (bash, \"b c\", 'd', shell_binaries)",
            "proc.name in ()",
            "proc.name in()",
            "proc.name in shell_binaries",
            "proc.name intersects (a)",
            "fd.name pmatch (/etc, /usr/lib)",
            "proc.name in ( a , b )",
            "proc.name in (0a!@#456:/\\.;!$%^&*[]{}|, value)",
            "evt.arg.flags in (O_WRONLY, O_RDWR)",
        ],
        &expect![[r#"
            === "proc.name in (bash, \"b c\", 'd', shell_binaries)"
            proc.name in (bash, "b c", 'd', shell_binaries)
            check @0..47 op 'in' @10..12
              field proc.name @0..9
              list @13..47
                bare "bash" @14..18
                dq "b c" @20..25
                sq "d" @27..30
                bare "shell_binaries" @32..46
            === "proc.name in ()"
            proc.name in ()
            check @0..15 op 'in' @10..12
              field proc.name @0..9
              list @13..15
            === "proc.name in()"
            proc.name in ()
            check @0..14 op 'in' @10..12
              field proc.name @0..9
              list @12..14
            === "proc.name in shell_binaries"
            proc.name in shell_binaries
            check @0..27 op 'in' @10..12
              field proc.name @0..9
              listref shell_binaries @13..27
            === "proc.name intersects (a)"
            proc.name intersects (a)
            check @0..24 op 'intersects' @10..20
              field proc.name @0..9
              list @21..24
                bare "a" @22..23
            === "fd.name pmatch (/etc, /usr/lib)"
            fd.name pmatch (/etc, /usr/lib)
            check @0..31 op 'pmatch' @8..14
              field fd.name @0..7
              list @15..31
                bare "/etc" @16..20
                bare "/usr/lib" @22..30
            === "proc.name in ( a , b )"
            proc.name in (a, b)
            check @0..22 op 'in' @10..12
              field proc.name @0..9
              list @13..22
                bare "a" @15..16
                bare "b" @19..20
            === "proc.name in (0a!@#456:/\\.;!$%^&*[]{}|, value)"
            proc.name in (0a!@#456:/\.;!$%^&*[]{}|, value)
            check @0..46 op 'in' @10..12
              field proc.name @0..9
              list @13..46
                bare "0a!@#456:/\\.;!$%^&*[]{}|" @14..38
                bare "value" @40..45
            === "evt.arg.flags in (O_WRONLY, O_RDWR)"
            evt.arg.flags in (O_WRONLY, O_RDWR)
            check @0..35 op 'in' @14..16
              field evt.arg.flags @0..13
              list @17..35
                bare "O_WRONLY" @18..26
                bare "O_RDWR" @28..34
        "#]],
    );
}

#[test]
fn modifiers() {
    check_all(
        &[
            "proc.name == oneof (cat, nginx)",
            "proc.name != anyof allowed",
            "proc.name = allof ()",
            "proc.name startswith anyof (/proc/, /sys/)",
            "proc.name == oneof",
            "proc.name == oneof and fd.name exists",
            "proc.name == oneof_x",
            "proc.name == 'oneof'",
        ],
        &expect![[r#"
            === "proc.name == oneof (cat, nginx)"
            proc.name == oneof (cat, nginx)
            check @0..31 op '==' @10..12 modifier oneof @13..18
              field proc.name @0..9
              list @19..31
                bare "cat" @20..23
                bare "nginx" @25..30
            === "proc.name != anyof allowed"
            proc.name != anyof allowed
            check @0..26 op '!=' @10..12 modifier anyof @13..18
              field proc.name @0..9
              listref allowed @19..26
            === "proc.name = allof ()"
            proc.name = allof ()
            check @0..20 op '=' @10..11 modifier allof @12..17
              field proc.name @0..9
              list @18..20
            === "proc.name startswith anyof (/proc/, /sys/)"
            proc.name startswith anyof (/proc/, /sys/)
            check @0..42 op 'startswith' @10..20 modifier anyof @21..26
              field proc.name @0..9
              list @27..42
                bare "/proc/" @28..34
                bare "/sys/" @36..41
            === "proc.name == oneof"
            proc.name == oneof
            check @0..18 op '==' @10..12
              field proc.name @0..9
              value bare "oneof" @13..18
            === "proc.name == oneof and fd.name exists"
            proc.name == oneof and fd.name exists
            and @0..37
              check @0..18 op '==' @10..12
                field proc.name @0..9
                value bare "oneof" @13..18
              check @23..37 op 'exists' @31..37
                field fd.name @23..30
            === "proc.name == oneof_x"
            proc.name == oneof_x
            check @0..20 op '==' @10..12
              field proc.name @0..9
              value bare "oneof_x" @13..20
            === "proc.name == 'oneof'"
            proc.name == 'oneof'
            check @0..20 op '==' @10..12
              field proc.name @0..9
              value sq "oneof" @13..20
        "#]],
    );
}

#[test]
fn fields_and_field_arguments() {
    check_all(
        &[
            "proc.aname[2] = sh",
            "proc.env[HOME] = /root",
            "evt.arg[0] contains /bin",
            "evt.rawarg.flags > 0",
            "container.image.repository = docker.io/library/nginx",
            "k8s.pod.label[app.kubernetes.io/name] = x",
            "test.str['a aa'] = a",
            "test.str[\"\"] = empty",
            "test.str[+0.25e+10] = a",
            "ka.req_v2.x9 exists",
        ],
        &expect![[r#"
            === "proc.aname[2] = sh"
            proc.aname[2] = sh
            check @0..18 op '=' @14..15
              field proc.aname @0..13 arg[bare "2" @11..12]
              value bare "sh" @16..18
            === "proc.env[HOME] = /root"
            proc.env[HOME] = /root
            check @0..22 op '=' @15..16
              field proc.env @0..14 arg[bare "HOME" @9..13]
              value bare "/root" @17..22
            === "evt.arg[0] contains /bin"
            evt.arg[0] contains /bin
            check @0..24 op 'contains' @11..19
              field evt.arg @0..10 arg[bare "0" @8..9]
              value bare "/bin" @20..24
            === "evt.rawarg.flags > 0"
            evt.rawarg.flags > 0
            check @0..20 op '>' @17..18
              field evt.rawarg.flags @0..16
              value bare "0" @19..20
            === "container.image.repository = docker.io/library/nginx"
            container.image.repository = docker.io/library/nginx
            check @0..52 op '=' @27..28
              field container.image.repository @0..26
              value bare "docker.io/library/nginx" @29..52
            === "k8s.pod.label[app.kubernetes.io/name] = x"
            k8s.pod.label[app.kubernetes.io/name] = x
            check @0..41 op '=' @38..39
              field k8s.pod.label @0..37 arg[bare "app.kubernetes.io/name" @14..36]
              value bare "x" @40..41
            === "test.str['a aa'] = a"
            test.str['a aa'] = a
            check @0..20 op '=' @17..18
              field test.str @0..16 arg[sq "a aa" @9..15]
              value bare "a" @19..20
            === "test.str[\"\"] = empty"
            test.str[""] = empty
            check @0..20 op '=' @13..14
              field test.str @0..12 arg[dq "" @9..11]
              value bare "empty" @15..20
            === "test.str[+0.25e+10] = a"
            test.str[+0.25e+10] = a
            check @0..23 op '=' @20..21
              field test.str @0..19 arg[bare "+0.25e+10" @9..18]
              value bare "a" @22..23
            === "ka.req_v2.x9 exists"
            ka.req_v2.x9 exists
            check @0..19 op 'exists' @13..19
              field ka.req_v2.x9 @0..12
        "#]],
    );
}

#[test]
fn transformers_and_val() {
    check_all(
        &[
            "tolower(proc.name) = bash",
            "toupper( proc.name ) = BASH",
            "b64(toupper(proc.name)) exists",
            "basename(proc.exepath) in (sh, bash)",
            "len(proc.args) > 10",
            "proc.name = val(proc.pname)",
            "proc.name != tolower(proc.pname)",
            "evt.num < val(proc.pid)",
            "proc.name in val(proc.pname)",
            "proc.pid = val(proc.aname[1])",
            "join(\"-\", (fd.name, tolower(fd.directory), 'lit', 12)) = x",
            "join(\"-\", ()) = x",
            "concat(proc.name, \"-\", proc.pid) = bash-1",
            "getopt(proc.args, \"nt:\")[t] = value",
        ],
        &expect![[r#"
            === "tolower(proc.name) = bash"
            tolower(proc.name) = bash
            check @0..25 op '=' @19..20
              transform tolower @0..18
                field proc.name @8..17
              value bare "bash" @21..25
            === "toupper( proc.name ) = BASH"
            toupper(proc.name) = BASH
            check @0..27 op '=' @21..22
              transform toupper @0..20
                field proc.name @9..18
              value bare "BASH" @23..27
            === "b64(toupper(proc.name)) exists"
            b64(toupper(proc.name)) exists
            check @0..30 op 'exists' @24..30
              transform b64 @0..23
                transform toupper @4..22
                  field proc.name @12..21
            === "basename(proc.exepath) in (sh, bash)"
            basename(proc.exepath) in (sh, bash)
            check @0..36 op 'in' @23..25
              transform basename @0..22
                field proc.exepath @9..21
              list @26..36
                bare "sh" @27..29
                bare "bash" @31..35
            === "len(proc.args) > 10"
            len(proc.args) > 10
            check @0..19 op '>' @15..16
              transform len @0..14
                field proc.args @4..13
              value bare "10" @17..19
            === "proc.name = val(proc.pname)"
            proc.name = val(proc.pname)
            check @0..27 op '=' @10..11
              field proc.name @0..9
              transform val @12..27
                field proc.pname @16..26
            === "proc.name != tolower(proc.pname)"
            proc.name != tolower(proc.pname)
            check @0..32 op '!=' @10..12
              field proc.name @0..9
              transform tolower @13..32
                field proc.pname @21..31
            === "evt.num < val(proc.pid)"
            evt.num < val(proc.pid)
            check @0..23 op '<' @8..9
              field evt.num @0..7
              transform val @10..23
                field proc.pid @14..22
            === "proc.name in val(proc.pname)"
            proc.name in val(proc.pname)
            check @0..28 op 'in' @10..12
              field proc.name @0..9
              transform val @13..28
                field proc.pname @17..27
            === "proc.pid = val(proc.aname[1])"
            proc.pid = val(proc.aname[1])
            check @0..29 op '=' @9..10
              field proc.pid @0..8
              transform val @11..29
                field proc.aname @15..28 arg[bare "1" @26..27]
            === "join(\"-\", (fd.name, tolower(fd.directory), 'lit', 12)) = x"
            join("-", (fd.name, tolower(fd.directory), 'lit', 12)) = x
            check @0..58 op '=' @55..56
              transform join @0..54
                dq "-" @5..8
                tlist @10..53
                  field fd.name @11..18
                  transform tolower @20..41
                    field fd.directory @28..40
                  sq "lit" @43..48
                  bare "12" @50..52
              value bare "x" @57..58
            === "join(\"-\", ()) = x"
            join("-", ()) = x
            check @0..17 op '=' @14..15
              transform join @0..13
                dq "-" @5..8
                tlist @10..12
              value bare "x" @16..17
            === "concat(proc.name, \"-\", proc.pid) = bash-1"
            concat(proc.name, "-", proc.pid) = bash-1
            check @0..41 op '=' @33..34
              transform concat @0..32
                field proc.name @7..16
                dq "-" @18..21
                field proc.pid @23..31
              value bare "bash-1" @35..41
            === "getopt(proc.args, \"nt:\")[t] = value"
            getopt(proc.args, "nt:")[t] = value
            check @0..35 op '=' @28..29
              transform getopt @0..27 arg[bare "t" @25..26]
                field proc.args @7..16
                dq "nt:" @18..23
              value bare "value" @30..35
        "#]],
    );
}

#[test]
fn quoting_and_escapes() {
    check_all(
        &[
            r#"proc.cmdline = "a \"quoted\" word""#,
            r"proc.cmdline = 'it\'s'",
            r#"proc.cmdline = 'mixed "'"#,
            r#"proc.cmdline = "tab\there\nnl\\back\/slash""#,
            r#"proc.cmdline = "\x41\x7f\xff""#,
            r#"proc.args contains "\ ""#,
            r#"proc.cmdline = "" and proc.name = ''"#,
            r#"proc.cmdline = "multi
line""#,
        ],
        &expect![[r#"
            === "proc.cmdline = \"a \\\"quoted\\\" word\""
            proc.cmdline = "a \"quoted\" word"
            check @0..34 op '=' @13..14
              field proc.cmdline @0..12
              value dq "a \"quoted\" word" @15..34
            === "proc.cmdline = 'it\\'s'"
            proc.cmdline = 'it\'s'
            check @0..22 op '=' @13..14
              field proc.cmdline @0..12
              value sq "it's" @15..22
            === "proc.cmdline = 'mixed \"'"
            proc.cmdline = 'mixed "'
            check @0..24 op '=' @13..14
              field proc.cmdline @0..12
              value sq "mixed \"" @15..24
            === "proc.cmdline = \"tab\\there\\nnl\\\\back\\/slash\""
            proc.cmdline = "tab\there\nnl\\back/slash"
            check @0..43 op '=' @13..14
              field proc.cmdline @0..12
              value dq "tab\there\nnl\\back/slash" @15..43
            === "proc.cmdline = \"\\x41\\x7f\\xff\""
            proc.cmdline = "A\x7f\xff"
            check @0..29 op '=' @13..14
              field proc.cmdline @0..12
              value dq "A\u{7f}�" @15..29
            === "proc.args contains \"\\ \""
            proc.args contains "\x5c"
            check @0..23 op 'contains' @10..18
              field proc.args @0..9
              value dq "\\" @19..23
            === "proc.cmdline = \"\" and proc.name = ''"
            proc.cmdline = "" and proc.name = ''
            and @0..36
              check @0..17 op '=' @13..14
                field proc.cmdline @0..12
                value dq "" @15..17
              check @22..36 op '=' @32..33
                field proc.name @22..31
                value sq "" @34..36
            === "proc.cmdline = \"multi\nline\""
            proc.cmdline = "multi\nline"
            check @0..27 op '=' @13..14
              field proc.cmdline @0..12
              value dq "multi\nline" @15..27
        "#]],
    );
}

#[test]
fn unicode_spans_and_line_col() {
    check_all(
        &[
            "proc.name = \"é\"\n  and fd.name = ü",
            "proc.name = \"é\"\n  and fd.name equals ü",
        ],
        &expect![[r#"
        === "proc.name = \"é\"\n  and fd.name = ü"
        proc.name = "é" and fd.name = ü
        and @0..35
          check @0..16 op '=' @10..11
            field proc.name @0..9
            value dq "é" @12..16
          check @23..35 op '=' @31..32
            field fd.name @23..30
            value bare "ü" @33..35
        === "proc.name = \"é\"\n  and fd.name equals ü"
        proc.name = "é" and <error>
        and @0..40
          check @0..16 op '=' @10..11
            field proc.name @0..9
            value dq "é" @12..16
          error @23..40
        error 2:15 @31..37: unknown operator 'equals'
    "#]],
    );
}

#[test]
fn rejected_inputs() {
    check_rejected(
        &[
            "",
            "   \n ",
            "a andb",
            "a and b and",
            "and a",
            "or a",
            "a or b or",
            "a not b",
            "a and or b",
            "(a)andnot(b)",
            "a.b = b = 1",
            "(a.b = 1",
            "a) and b",
            "proc.name equals bash",
            "macro > 12",
            "proc.name",
            "proc.name and x",
            "proc.name startswith",
            "proc.name startswith and x",
            "proc.name containsvalue",
            "test.op === value",
            "evt.num > abc",
            "evt.num > 1abc",
            "evt.num < 0xAAA.1",
            "proc.name in (a,,b)",
            "proc.name in (a,)",
            "proc.name in (,)",
            "proc.name in (a b) and x",
            "proc.name in ((a))",
            "proc.name in (a, b",
            "proc.name in \"a\"",
            "proc.name = 'unterminated",
            r#"proc.name = "bad \q escape" and x.y = "\x4" and z.z = "\xg1""#,
            r#"proc.name = 'no \" here'"#,
            r#"proc.name = "no \' here""#,
            "evt.arg[] contains /bin",
            "evt.arg[x = 1",
            "test.str[   test   ] = x",
            "b64 (test.field) exists",
            "some_fake(test.field) exists",
            "val(test.field) exists",
            "proc.name = val(tolower(x.y))",
            "proc.name = b64(val(x.y))",
            "b64(test.field exists",
            "proc.name = some_fake(x.y)",
            "join(\"-\", ((fd.name))) = x",
            "join(\"-\", (macro)) = x",
            "proc.name == oneof(cat)",
            "proc.num > oneof (1, 2)",
            "proc.name in oneof (cat)",
            "()",
            "not",
            "a and not",
            "proc.name = x or (y and",
            "#a and b; a and b",
            "fd.name=/var/lo);g/httpd.log",
        ],
        &expect![[r##"
            === ""
            error 1:1 @0..0: empty condition
            === "   \n "
            error 1:1 @0..5: empty condition
            === "a andb"
            a
            error 1:3 @2..6: unexpected 'andb', expected 'and', 'or' or the end of the condition
            === "a and b and"
            a and b and <error>
            error 1:12 @11..11: expected a condition after 'and'
            === "and a"
            <error> and a
            error 1:1 @0..3: expected a condition, found 'and'
            === "or a"
            <error> or a
            error 1:1 @0..2: expected a condition, found 'or'
            === "a or b or"
            a or b or <error>
            error 1:10 @9..9: expected a condition after 'or'
            === "a not b"
            a
            error 1:3 @2..5: unexpected 'not' after a condition: use 'and not' or 'or not'
            === "a and or b"
            a and <error> or b
            error 1:7 @6..8: expected a condition after 'and', found 'or'
            === "(a)andnot(b)"
            a
            error 1:4 @3..9: unexpected 'andnot', expected 'and', 'or' or the end of the condition
            === "a.b = b = 1"
            a.b = b
            error 1:9 @8..9: unexpected '=', expected 'and', 'or' or the end of the condition
            === "(a.b = 1"
            a.b = 1
            error 1:1 @0..1: unclosed '('
            === "a) and b"
            a and b
            error 1:2 @1..2: unbalanced ')'
            === "proc.name equals bash"
            <error>
            error 1:11 @10..16: unknown operator 'equals'
            === "macro > 12"
            macro
            error 1:7 @6..7: unexpected '>', expected 'and', 'or' or the end of the condition
            === "proc.name"
            <error>
            error 1:10 @9..9: expected an operator after 'proc.name'
            === "proc.name and x"
            <error> and x
            error 1:11 @10..13: expected an operator after 'proc.name', found 'and'
            === "proc.name startswith"
            <error>
            error 1:11 @10..20: expected a value after 'startswith'
            === "proc.name startswith and x"
            proc.name startswith and
            error 1:26 @25..26: unexpected 'x', expected 'and', 'or' or the end of the condition
            === "proc.name containsvalue"
            <error>
            error 1:11 @10..23: unknown operator 'containsvalue'
            === "test.op === value"
            <error>
            error 1:11 @10..11: expected a value after '==', found '='
            === "evt.num > abc"
            <error>
            error 1:11 @10..13: expected a number after '>', found 'abc'
            === "evt.num > 1abc"
            <error>
            error 1:11 @10..14: invalid number '1abc'
            === "evt.num < 0xAAA.1"
            <error>
            error 1:11 @10..17: invalid number '0xAAA.1'
            === "proc.name in (a,,b)"
            proc.name in (a, b)
            error 1:17 @16..17: expected a value after ','
            === "proc.name in (a,)"
            proc.name in (a)
            error 1:17 @16..17: expected a value after ','
            === "proc.name in (,)"
            proc.name in ()
            error 1:15 @14..15: expected a value or ')' after '('
            === "proc.name in (a b) and x"
            proc.name in (a) and x
            error 1:17 @16..17: expected ',' or ')' in the list, found 'b'
            === "proc.name in ((a))"
            proc.name in ()
            error 1:15 @14..17: nested lists are not supported
            === "proc.name in (a, b"
            <error>
            error 1:14 @13..14: unclosed '(' of the list
            === "proc.name in \"a\""
            <error>
            error 1:14 @13..16: expected a list or a list name after 'in', found '"a"'
            === "proc.name = 'unterminated"
            <error>
            error 1:13 @12..25: unterminated string
            === "proc.name = \"bad \\q escape\" and x.y = \"\\x4\" and z.z = \"\\xg1\""
            proc.name = "bad  escape" and x.y = "" and z.z = ""
            error 1:18 @17..19: unsupported escape sequence '\q'
            error 1:40 @39..42: truncated '\x' escape: expected two hex digits
            error 1:56 @55..59: invalid hex escape '\xg1'
            === "proc.name = 'no \\\" here'"
            proc.name = 'no  here'
            error 1:17 @16..18: invalid '\"' escape in a single-quoted string
            === "proc.name = \"no \\' here\""
            proc.name = "no  here"
            error 1:17 @16..18: invalid '\'' escape in a double-quoted string
            === "evt.arg[] contains /bin"
            <error>
            error 1:8 @7..9: expected a field argument after '[', found ']'
            === "evt.arg[x = 1"
            <error>
            error 1:8 @7..8: expected ']' to close the field argument, found a blank
            === "test.str[   test   ] = x"
            <error>
            error 1:10 @9..10: expected a field argument after '[', found a blank
            === "b64 (test.field) exists"
            b64
            error 1:5 @4..16: unexpected '(test.field)', expected 'and', 'or' or the end of the condition
            === "some_fake(test.field) exists"
            <error>
            error 1:1 @0..9: unknown field transformer 'some_fake'
            === "val(test.field) exists"
            <error>
            error 1:1 @0..3: 'val(…)' can only be used on the right-hand side of a comparison
            === "proc.name = val(tolower(x.y))"
            <error>
            error 1:17 @16..23: 'val(…)' takes a plain field, not a transformer
            === "proc.name = b64(val(x.y))"
            <error>
            error 1:17 @16..19: 'val(…)' cannot be used inside a transformer
            === "b64(test.field exists"
            <error>
            error 1:16 @15..21: expected ',' or ')' in the arguments of 'b64(', found 'exists'
            === "proc.name = some_fake(x.y)"
            <error>
            error 1:13 @12..21: unknown field transformer 'some_fake'
            === "join(\"-\", ((fd.name))) = x"
            <error>
            error 1:12 @11..20: nested lists are not supported in transformer arguments
            === "join(\"-\", (macro)) = x"
            <error>
            error 1:12 @11..16: expected a field, a transformer, a quoted string or a number as argument of 'join(', found 'macro'
            === "proc.name == oneof(cat)"
            <error>
            error 1:14 @13..18: unknown field transformer 'oneof'
            === "proc.num > oneof (1, 2)"
            <error>
            error 1:12 @11..16: expected a number after '>', found 'oneof'
            === "proc.name in oneof (cat)"
            proc.name in oneof
            error 1:20 @19..24: unexpected '(cat)', expected 'and', 'or' or the end of the condition
            === "()"
            <error>
            error 1:2 @1..2: expected a condition after '(', found ')'
            === "not"
            not <error>
            error 1:4 @3..3: expected a condition after 'not'
            === "a and not"
            a and not <error>
            error 1:10 @9..9: expected a condition after 'not'
            === "proc.name = x or (y and"
            proc.name = x or y and <error>
            error 1:24 @23..23: expected a condition after 'and'
            error 1:18 @17..18: unclosed '('
            === "#a and b; a and b"
            <error> and b and b
            error 1:1 @0..2: expected a condition, found '#a'
            error 1:9 @8..9: unexpected ';', expected 'and', 'or' or the end of the condition
            === "fd.name=/var/lo);g/httpd.log"
            fd.name = /var/lo
            error 1:16 @15..16: unbalanced ')'
            error 1:17 @16..28: unexpected ';g/httpd.log', expected 'and', 'or' or the end of the condition
        "##]],
    );
}

#[test]
fn recovery_reports_every_error() {
    check_rejected(
        &["proc.name equals a and fd.name = (x) or evt.num > y and (b or ) and c.d in (1,"],
        &expect![[r#"
            === "proc.name equals a and fd.name = (x) or evt.num > y and (b or ) and c.d in (1,"
            <error> and <error> or <error> and (b or <error>) and <error>
            error 1:11 @10..16: unknown operator 'equals'
            error 1:34 @33..36: expected a value after '=', found '(x)'
            error 1:51 @50..51: expected a number after '>', found 'y'
            error 1:63 @62..63: expected a condition after 'or', found ')'
            error 1:76 @75..76: unclosed '(' of the list
        "#]],
    );
}

#[test]
fn whitespace_variants_of_accepted_inputs() {
    for src in [
        "a and b",
        "(a)and(b)and(c)",
        "not (not (a))",
        "not not(a)",
        "a.a=1 or b.b=2 and c",
        "a.g in (1, 'a', b.c)",
        "b64(test.field) exists or not b64(test.field) contains 'a'",
        "some.field = b64(b64(test.field) )",
        "proc.name == oneof (cat, nginx) and fd.name exists",
        "join(\"-\", ( fd.name , fd.directory )) = /tmp",
        "test.op existsand macro",
    ] {
        accepted_with_whitespace_variants(src);
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = "(".repeat(100_000);
    let p = parse(&deep);
    assert_eq!(p.diagnostics.len(), 1, "{:?}", p.diagnostics);
    assert!(p.diagnostics[0].message.contains("nested too deeply"));

    let nots = "not ".repeat(100_000) + "a";
    let p = parse(&nots);
    assert_eq!(p.diagnostics.len(), 1);

    let tr = "tolower(".repeat(100_000);
    let p = parse(&tr);
    assert_eq!(p.diagnostics.len(), 1);

    // the limit itself is accepted, with stack to spare: run it on a 1 MiB stack
    // (half of a default test thread's) in an unoptimised build
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(limit_is_accepted)
        .expect("spawn")
        .join()
        .expect("no stack overflow");
}

fn limit_is_accepted() {
    let n = driftwatch_rule_lang::MAX_DEPTH;
    let ok = format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&ok).is_ok());
    let ok = format!("{}a", "not ".repeat(n));
    assert!(parse(&ok).is_ok());
    let ok = format!("{}x.y{} exists", "b64(".repeat(n), ")".repeat(n));
    assert!(parse(&ok).is_ok());
    let too_deep = format!("{}a{}", "(".repeat(n + 1), ")".repeat(n + 1));
    assert!(!parse(&too_deep).is_ok());
}

/// Found by the `parse` fuzz target: a bare value glued to `=` that starts with a modifier word
/// and a backspace (a blank to Falco's lexer, not the end of a bare word) printed as
/// `p.b = allof\bdP\b`, which parses back as the `allof` modifier on the list `dP`.
#[test]
fn regression_bare_value_starting_with_a_modifier_word_round_trips() {
    for src in [
        "p.b=allof\u{8}dP\u{8}",
        "p.b!=oneof\u{8}x",
        "p.b==anyof\u{8}a\u{8}b",
    ] {
        let p = parse(src);
        assert!(p.diagnostics.is_empty(), "{src:?}: {:?}", p.diagnostics);
        assert_round_trip(src);
    }
    // With a blank after the operator the word is the modifier, as before.
    let p = parse("p.b = allof\u{8}dP");
    let printed = p.expr.map(|e| e.to_string());
    assert_eq!(printed.as_deref(), Some("p.b = allof dP"));
}
