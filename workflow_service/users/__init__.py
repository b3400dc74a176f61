"""The user directory: who people are (JWT ``sub``), their e-mail, roles and tenant."""
