"""What leaves StemDesk: stems writers, the null check and its certificate, remix renders and DAW sessions."""
