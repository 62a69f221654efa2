"""EJBCA's v2 REST resources (``/ejbca/ejbca-rest-api/v2/...``) that the CA core answers: the certificate
resource (status, count, certificate profile info, paginated and sorted search, key recovery). The v2 end
entity resource lives with the end entities (``endentities.api_v2``): the core does not import that app."""
