"""Operations: the local stack (``p13n up``), the shopper simulator, and the operator CLI."""
