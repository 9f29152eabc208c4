//! Parsing one command's arguments alone, for the commands' unit tests.

/// Wraps one command's arguments in a parser of their own.
#[derive(clap::Parser)]
struct Only<A: clap::Args> {
    #[command(flatten)]
    args: A,
}

/// Parses `argv` (program name first) as the arguments `A` alone.
pub fn parse_args<A: clap::Args>(argv: &[&str]) -> Result<A, clap::Error> {
    <Only<A> as clap::Parser>::try_parse_from(argv).map(|only| only.args)
}
