//! Manual pages (roff, section 1) rendered from clap command definitions: one page for a command
//! and one per subcommand (`rwsctl-status.1`, as git does), so `man rwsctl status`-style lookups
//! find each subcommand's options. Used by `rwsd`'s `make_man_pages` example, which writes the
//! pages the Debian package ships, and by the test that checks the committed pages are current.

use clap::Command;

/// Each page as (file name, roff text): `NAME.1`, then `NAME-SUB.1` for every subcommand.
pub fn pages(cmd: Command) -> Vec<(String, Vec<u8>)> {
    let name = cmd.get_name().to_string();
    let source = format!("{name} {}", cmd.get_version().unwrap_or_default());
    let mut out = vec![(format!("{name}.1"), render(cmd.clone(), &source))];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = sub.get_name();
        // The page's title is `rwsctl-status`; its synopsis reads `rwsctl status ...`.
        let page = sub
            .clone()
            .display_name(format!("{name}-{sub_name}"))
            .bin_name(format!("{name} {sub_name}"));
        out.push((format!("{name}-{sub_name}.1"), render(page, &source)));
    }
    out
}

fn render(cmd: Command, source: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    // Rendering into a Vec cannot fail for I/O reasons; an error here is clap_mangen's own bug.
    clap_mangen::Man::new(cmd)
        .source(source)
        .manual("rws")
        .render(&mut buf)
        .expect("rendering a manual page into memory");
    buf
}
