fn main() {
    use std::mem::size_of;
    println!(
        "Node {}",
        size_of::<dht_core::Node<dht_store_mem::MemStore>>()
    );
    println!("Config {}", size_of::<dht_core::Config>());
    println!("NodeStats {}", size_of::<dht_core::NodeStats>());
    println!(
        "RateLimiter {}",
        size_of::<dht_core::internals::RateLimiter>()
    );
    println!("Defense {}", size_of::<dht_core::Defense>());
    println!("MemStore {}", size_of::<dht_store_mem::MemStore>());
}
