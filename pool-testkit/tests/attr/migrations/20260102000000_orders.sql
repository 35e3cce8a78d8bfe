CREATE TABLE orders (
    id       BIGINT PRIMARY KEY,
    user_id  BIGINT NOT NULL REFERENCES users (id),
    total    INTEGER NOT NULL
);
