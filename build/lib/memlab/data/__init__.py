"""TinyMem data: sequence generators, artifacts (noise, backdoors, duplication), caching, data modules."""
