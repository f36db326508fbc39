//! Compiles the C reference model (`c/echo_epoll.c`, model `c-epoll`) with the system C
//! compiler. It is always optimised: a ceiling measured at -O0 would be no ceiling.

fn main() {
    println!("cargo:rerun-if-changed=c/echo_epoll.c");
    cc::Build::new()
        .file("c/echo_epoll.c")
        .std("c11")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .compile("sockit_c_epoll");
}
