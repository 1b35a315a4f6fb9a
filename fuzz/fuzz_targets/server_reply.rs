#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ftp_proxy_fuzz::targets::server_reply(data));
