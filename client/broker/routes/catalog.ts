// What the broker offers: the OSB catalog (`/v2/catalog`, without brokerflow's own plan settings) and the OpenAPI
// document of its API (`/openapi.json`). Both are computed once.
import type { FastifyPluginAsync } from 'fastify';
import { publicCatalog, type Catalog } from '../../../config/catalog';
import { openApiDocument } from '../openapi';

export const catalogRoutes: FastifyPluginAsync<{ catalog: Catalog }> = async (app, { catalog }) => {
  const served = publicCatalog(catalog);
  app.get('/v2/catalog', async () => served);
  const openapi = openApiDocument();
  app.get('/openapi.json', async () => openapi);
};
