fn main() {
    println!("sspr-ivr: under construction");
}
