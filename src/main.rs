use std::process::ExitCode;

use clap::Parser;
use dialerd::cli::{Cli, Command, DncCommand, OrgCommand, TokenCommand};
use dialerd::settings::Settings;
use dialerd::{admin, app, db, demo, telemetry};

/// sysexits' EX_CONFIG: systemd's `RestartPreventExitStatus=78` stops a restart loop.
const EXIT_BAD_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dialerd: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let mut log = settings.log.clone();
    if matches!(command, Command::Demo(_)) {
        // The demo's progress lines are the show; only warnings interrupt them.
        log.level = "warn".into();
    }
    telemetry::init(&log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dialerd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialerd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => app::serve(settings).await,
        Command::Demo(args) => demo::run(settings, args).await,
        Command::Import(args) => {
            let pool = app::database(&settings).await?;
            dialerd::import::command::run(&pool, args).await
        }
        Command::Forecast(args) => dialerd::forecast::command::run(&settings, args).await,
        Command::Dnc(DncCommand::Load(args)) => {
            let pool = app::database(&settings).await?;
            dialerd::import::dnc::run(&pool, args).await
        }
        Command::Migrate => {
            app::database(&settings).await?;
            println!(
                "migrations applied to {}",
                db::redacted(&settings.database.url)
            );
            Ok(())
        }
        Command::CheckConfig => {
            let mut shown = settings.clone();
            shown.database.url = db::redacted(&shown.database.url);
            println!("settings are valid:\n{shown:#?}");
            Ok(())
        }
        Command::Org(OrgCommand::Create {
            name,
            concurrency_limit,
        }) => {
            let pool = app::database(&settings).await?;
            println!(
                "{}",
                admin::create_org(&pool, &name, concurrency_limit).await?
            );
            Ok(())
        }
        Command::Token(TokenCommand::Create { org, scopes }) => {
            let pool = app::database(&settings).await?;
            println!("{}", admin::create_token(&pool, org, &scopes).await?);
            Ok(())
        }
    }
}
