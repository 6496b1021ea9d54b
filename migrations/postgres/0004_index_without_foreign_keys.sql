-- The index rows of an entity (relations, property values, search terms)
-- are always deleted together with the entity, in the same transaction, by
-- the code that deletes it. Checking a foreign key for each of the
-- hundreds of thousands of index rows a large import writes took about a
-- fifth of the import's time, so the checks are dropped.
ALTER TABLE entity_relations DROP CONSTRAINT IF EXISTS entity_relations_source_id_fkey;
ALTER TABLE entity_property_values DROP CONSTRAINT IF EXISTS entity_property_values_entity_id_fkey;
ALTER TABLE search_terms DROP CONSTRAINT IF EXISTS search_terms_entity_id_fkey;
