"""The agent builder: an interview that ends in a validated business profile, sized and deployed."""
