"""The application layer: what each API call does, in terms of the domain and the Store port."""
