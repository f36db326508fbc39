//! Runs the TFTP benchmark without the CLI:
//! `cargo run --release -p sockit-bench --example tftp_bench [SIZE_MIB [BLKSIZE [WINDOWSIZE]]]`.

use sockit_bench::tftp::{run, BenchConfig};

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let mut config = BenchConfig::default();
    if let Some(&mib) = args.first() {
        config.size = mib << 20;
    }
    if let Some(&blksize) = args.get(1) {
        config.blksize = u16::try_from(blksize).expect("blksize fits in u16");
    }
    if let Some(&windowsize) = args.get(2) {
        config.windowsize = u16::try_from(windowsize).expect("windowsize fits in u16");
    }
    match run(&config).await {
        Ok(report) => println!("{}", report.markdown),
        Err(err) => {
            eprintln!("tftp bench: {err}");
            std::process::exit(1);
        }
    }
}
