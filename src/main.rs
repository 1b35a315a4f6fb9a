//! ftp-proxy(8): start-up in a fixed, visible order. (Pending.)

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match ftp_proxy::options::parse(&args) {
        Ok(_) => {}
        Err(_) => std::process::exit(1),
    }
}
